"""The tokenizer alone (no torch): the service checks queries with it before any model work.

[family] lowercase, split on non-letters: a word is a run of the letters a-z.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[a-z]+")


def tokenize(caption: str) -> list[str]:
    return _WORD.findall(caption.lower())
