"""Casing class of each token, read from the original text at the token's character offsets.

An uncased backbone (the default MiniLM) lower-cases its input, so its states cannot tell
"apple" from "Apple" or "US" from "us"; for NER that is the strongest entity cue. A token
head with ``case_features`` adds a learned embedding of this class to F_t. Training
(``heads/train``) and inference (``engine/core.py``) both call :func:`window_case_ids`,
so a head sees the same ids either way.

Classes (of the token's own characters, whitespace stripped):

====  ==========  ==================================================
id    name        when
====  ==========  ==================================================
0     SPECIAL     special tokens ([CLS], [SEP]), padding, empty spans
1     OTHER       no letter and no leading digit: punctuation, symbols
2     DIGIT       starts with a digit ("1996", "3rd")
3     LOWER       letters all lower case ("paris", "##ton")
4     TITLE       first letter upper, the other letters lower ("Paris", "A")
5     UPPER       two or more letters, all upper case ("US", "NATO")
6     MIXED       any other mix ("iPhone", "McDonald")
====  ==========  ==================================================
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

SPECIAL, OTHER, DIGIT, LOWER, TITLE, UPPER, MIXED = range(7)
NUM_CASE_CLASSES = 7
CASE_CLASS_NAMES = ("special", "other", "digit", "lower", "title", "upper", "mixed")
# The class each class becomes when the text is lower-cased: training can show a head
# lower-cased sentences this way (``--case-dropout``) so lower-case input does not throw it.
LOWERED = (SPECIAL, OTHER, DIGIT, LOWER, LOWER, LOWER, LOWER)


@functools.lru_cache(maxsize=1 << 16)
def case_class(piece: str) -> int:
    """The casing class of one token's characters (table in the module docstring).

    Cached: the same pieces recur across texts, and the engine classifies every token of
    every text a token head with case features reads.
    """
    piece = piece.strip()
    if not piece:
        return SPECIAL
    if piece[0].isdigit():
        return DIGIT
    letters = [c for c in piece if c.isalpha()]
    if not letters:
        return OTHER
    if not any(c.isupper() for c in letters):
        # Letters without case (CJK, ...) count as lower: they carry no casing signal.
        return LOWER
    if letters[0].isupper() and all(not c.isupper() for c in letters[1:]):
        return TITLE
    if len(letters) >= 2 and all(c.isupper() for c in letters):
        return UPPER
    return MIXED


def token_case_ids(text: str, offsets: Sequence[tuple[int, int]]) -> list[int]:
    """One class per content token of ``text`` (``offsets``: the tokenizer's char spans)."""
    return [case_class(text[a:b]) if b > a else SPECIAL for a, b in offsets]


def window_case_ids(
    token_ids: Sequence[int], start: int, end: int, width: int, lead: int = 1
) -> list[int]:
    """Class per position of one padded window: ``lead`` special tokens, content tokens
    ``start:end`` (``token_ids`` from :func:`token_case_ids` of the whole text), then
    SPECIAL for the closing special token(s) and padding up to ``width``."""
    out = [SPECIAL] * lead + list(token_ids[start:end])
    if len(out) > width:
        raise ValueError(f"window of {len(out)} positions does not fit width {width}")
    return out + [SPECIAL] * (width - len(out))
