"""Identity keys and script rules for usernames and emails: one account per look-alike name.

``identity_key`` is what uniqueness and lookups compare (NFKC then case-fold, as Unicode's
NFKC_Casefold), so ``Alice``, ``alice`` and ``alice`` in fullwidth letters (U+FF41...) are one
name. ``mixed_script`` catches what normalization cannot: a Cyrillic a (U+0430) inside a Latin
word (UTS #39 "highly restrictive": one script, or Latin with the scripts CJK writing
combines).
"""

from __future__ import annotations

import unicodedata

#: first words of Unicode character names that are not the script's own name
_SCRIPT_ALIASES = {"CJK": "HAN", "IDEOGRAPHIC": "HAN"}
#: first words naming a width variant: the script is the next word
_WIDTH_WORDS = frozenset({"HALFWIDTH", "FULLWIDTH"})
#: first words of letters every script shares (the long-vowel mark, modifier letters)
_COMMON_WORDS = frozenset({"KATAKANA-HIRAGANA", "MODIFIER"})

#: scripts that legitimately mix within one word (Japanese, Chinese with Bopomofo, Korean)
_ALLOWED_MIXES = (
    frozenset({"LATIN", "HAN", "HIRAGANA", "KATAKANA"}),
    frozenset({"LATIN", "HAN", "BOPOMOFO"}),
    frozenset({"LATIN", "HAN", "HANGUL"}),
)


def identity_key(value: str) -> str:
    """The form two names are compared in: NFKC, case-folded, NFKC again (folding can
    produce sequences NFKC would change, e.g. ``ǰ``)."""
    if value.isascii():  # NFKC leaves ASCII alone, and casefold is lower there
        return value.lower()
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", value).casefold())


def script_of(char: str) -> str | None:
    """The script of a letter or spacing mark, by its Unicode name; None for characters
    every script shares (digits, punctuation) and for combining marks (they inherit)."""
    category = unicodedata.category(char)
    if category[0] not in "LM":
        return None
    name = unicodedata.name(char, "")
    if not name or name.startswith("COMBINING"):
        return None
    words = name.split(" ")
    if words[0] in _WIDTH_WORDS and len(words) > 1:
        words = words[1:]
    if words[0] in _COMMON_WORDS:
        return None
    return _SCRIPT_ALIASES.get(words[0], words[0])


def scripts_in(value: str) -> set[str]:
    """The scripts a name is written in, read after NFKC (fullwidth Latin is Latin)."""
    return {s for s in map(script_of, unicodedata.normalize("NFKC", value)) if s}


def mixed_script(value: str) -> str | None:
    """Why ``value`` mixes scripts (e.g. ``"mixes CYRILLIC, LATIN"``), or None when it does
    not."""
    if value.isascii():  # ASCII letters are all Latin
        return None
    scripts = scripts_in(value)
    if len(scripts) <= 1 or any(scripts <= allowed for allowed in _ALLOWED_MIXES):
        return None
    return "mixes " + ", ".join(sorted(scripts))
