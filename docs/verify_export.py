#!/usr/bin/env python3
"""Check an akashone-es export against a digest, with nothing but Python's standard library.

    python3 verify_export.py EXPORT.jsonl DIGEST.json [--complete]

Exit 0 and "OK" when the export's chain reaches the digest's hash; exit 1 naming the first
line that does not. Use a digest you kept yourself, never one sent along with the export.
OK proves every event shown unaltered and in its place, the lines unbroken up to the digest.
It does not prove that a filtered export left out no event its filters match (an event
before the anchor, or carried as a leaf only, is not shown): --complete also requires the
export to start at the chain's start and hide nothing, i.e. to hold the whole log.

The rules (see docs/architecture.md, "Audit: the hash chain"):
  leaf(n) = SHA-256(position as 8 bytes || originator UUID as 16 bytes || version as 8 bytes
                    || topic length as 4 bytes || topic || state length as 4 bytes || state)
  seal(n) = SHA-256(seal(n-1) || leaf(n))   (integers big-endian, text UTF-8)
The header gives the seal before the first event ("anchor") and that event's position
("anchor_position"; 0 and 32 zero bytes at the chain's start). Each line after it is one event,
in the chain's order: with its state (its leaf is computed) or with its leaf only (hidden).
"""

from __future__ import annotations

import hashlib
import json
import struct
import sys
import uuid


def number(value: object, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} {value!r} is not a whole number")
    return value


def leaf_of(line: dict, position: int) -> bytes:
    """The leaf of an event line: computed from its content, or given for a hidden one."""
    if "state" not in line:
        return bytes.fromhex(line["leaf"])
    topic, state = line["topic"].encode(), line["state"].encode()
    return hashlib.sha256(
        struct.pack(">Q", position) + uuid.UUID(line["originator_id"]).bytes
        + struct.pack(">Q", number(line["version"], "version"))
        + struct.pack(">I", len(topic)) + topic + struct.pack(">I", len(state)) + state).digest()


def check(export_path: str, digest_path: str, complete: bool) -> str:
    """What the export proves, or raises ValueError saying what is wrong."""
    with open(digest_path, encoding="utf-8") as handle:
        digest = json.load(handle)
    target, wanted = int(digest["position"]), digest["hash"]
    shown = hidden = 0
    with open(export_path, encoding="utf-8") as handle:
        header = json.loads(handle.readline())
        if not isinstance(header, dict) or header.get("format") not in (
                "akashone-export/1", "akashone-export/2"):
            raise ValueError("line 1 is not an akashone-export/2 header")
        if header["format"] == "akashone-export/1":  # older: anchor_position = first - 1
            header["anchor_position"] = header["first"] - 1
        seal, anchor = bytes.fromhex(header["anchor"]), number(header["anchor_position"],
                                                                "anchor_position")
        if complete and (anchor != 0 or seal != bytes(32)):
            raise ValueError(f"not complete: it starts after position {anchor}")
        at_target = seal if anchor == target else None
        for count, text in enumerate(handle, start=2):
            line = json.loads(text)
            position = number(line["position"], f"line {count}: position")
            if at_target is not None:
                raise ValueError(f"line {count}: position {position} is past the digest's")
            if "state" not in line and complete:
                raise ValueError(f"not complete: position {position} is hidden")
            shown, hidden = shown + ("state" in line), hidden + ("state" not in line)
            seal = hashlib.sha256(seal + leaf_of(line, position)).digest()
            if seal.hex() != line["hash"]:
                raise ValueError(f"line {count} (position {position}) does not match its hash")
            if position == target:
                at_target = seal
    if at_target is None or at_target.hex() != wanted:
        raise ValueError(f"the chain does not reach the digest's hash at position {target}")
    return f"from after position {anchor}: {shown} events shown, {hidden} hidden"


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--complete"]
    if len(args) != 2:
        sys.exit("usage: verify_export.py EXPORT.jsonl DIGEST.json [--complete]")
    try:
        proven = check(args[0], args[1], "--complete" in sys.argv[1:])
    except (OSError, ValueError, KeyError, TypeError, AttributeError, struct.error) as exc:
        print(f"NOT VERIFIED: {exc}")
        sys.exit(1)
    print(f"OK: the export matches the digest ({proven})")


if __name__ == "__main__":
    main()
