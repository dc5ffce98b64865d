#!/usr/bin/env python3
"""Check an akashone-es export against a digest, with nothing but Python's standard library.

    python3 verify_export.py EXPORT.jsonl DIGEST.json

Exit 0 and "OK" when the export's chain reaches the digest's hash; exit 1 naming the first
line that does not. Use a digest you kept yourself, never one sent along with the export.

The rules (see docs/architecture.md, "Audit: the hash chain"):
  leaf(n) = SHA-256(position as 8 bytes || originator UUID as 16 bytes || version as 8 bytes
                    || topic length as 4 bytes || topic || state length as 4 bytes || state)
  seal(n) = SHA-256(seal(n-1) || leaf(n))   (integers big-endian, text UTF-8)
The first line (the header) gives the seal before the first event ("anchor") and that event's
position ("anchor_position"). Each line after it is one event, in the chain's order (positions
are not consecutive): with its state (the leaf is computed from it) or with its leaf only (an
event the export leaves out).
"""

from __future__ import annotations

import hashlib
import json
import struct
import sys
import uuid


def leaf_of(line: dict) -> bytes:
    """The leaf of an event line: computed from its content, or given for a hidden one."""
    if "state" not in line:
        return bytes.fromhex(line["leaf"])
    topic, state = line["topic"].encode(), line["state"].encode()
    return hashlib.sha256(
        struct.pack(">Q", line["position"]) + uuid.UUID(line["originator_id"]).bytes
        + struct.pack(">Q", line["version"]) + struct.pack(">I", len(topic)) + topic
        + struct.pack(">I", len(state)) + state).digest()


def check(export_path: str, digest_path: str) -> str | None:  # noqa: PLR0911
    """None when the export reaches the digest, else what is wrong."""
    with open(digest_path, encoding="utf-8") as handle:
        digest = json.load(handle)
    target, wanted = int(digest["position"]), digest["hash"]
    with open(export_path, encoding="utf-8") as handle:
        header = json.loads(handle.readline())
        if header.get("format") == "akashone-export/1":  # older: anchor_position = first - 1
            header["anchor_position"] = header["first"] - 1
        elif header.get("format") != "akashone-export/2":
            return "line 1 is not an akashone-export/2 header"
        seal = bytes.fromhex(header["anchor"])
        at_target = seal if header["anchor_position"] == target else None
        for number, text in enumerate(handle, start=2):
            line = json.loads(text)
            position = line["position"]
            if at_target is not None:
                return f"line {number}: position {position} is past the digest's {target}"
            seal = hashlib.sha256(seal + leaf_of(line)).digest()
            if seal.hex() != line["hash"]:
                return f"line {number} (position {position}) does not match its hash"
            if position == target:
                at_target = seal
    if at_target is None:
        return f"the export does not reach the digest's position {target}"
    if at_target.hex() != wanted:
        return f"at position {target} the chain differs from the digest"
    return None


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit("usage: verify_export.py EXPORT.jsonl DIGEST.json")
    try:
        problem = check(sys.argv[1], sys.argv[2])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        problem = f"cannot read it: {type(exc).__name__}: {exc}"
    if problem:
        print(f"NOT VERIFIED: {problem}")
        sys.exit(1)
    print("OK: the export matches the digest")


if __name__ == "__main__":
    main()
