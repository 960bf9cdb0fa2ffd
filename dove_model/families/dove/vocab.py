"""Tokenizer and vocabulary, built from training captions only and saved with the model.

[family] lowercase, split on non-letters, minimum word frequency, ``<pad>`` = 0, ``<unk>`` = 1,
captions cut at ``max_len`` tokens. An empty caption or one of unknown words only still encodes
(as ``<unk>``), so no caption crashes the encoder.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from dove_model.atomic import write_text
from dove_model.errors import ConfigError
from dove_model.model.tokens import tokenize

PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1


@dataclass(frozen=True)
class Vocabulary:
    word2idx: dict[str, int]
    max_len: int = 47

    @classmethod
    def build(cls, captions: Iterable[str], min_freq: int, max_len: int) -> Vocabulary:
        counts = Counter(word for caption in captions for word in tokenize(caption))
        words = sorted(w for w, n in counts.items() if n >= min_freq)
        word2idx = {PAD: PAD_ID, UNK: UNK_ID}
        word2idx.update({w: i + 2 for i, w in enumerate(words)})
        return cls(word2idx=word2idx, max_len=max_len)

    def __len__(self) -> int:
        return len(self.word2idx)

    def unknown_words(self, caption: str) -> list[str]:
        """The caption's words that are not in the vocabulary (each once, in order)."""
        return list(dict.fromkeys(w for w in tokenize(caption) if w not in self.word2idx))

    def encode(self, caption: str) -> list[int]:
        """Word ids, cut at ``max_len``; never empty (an empty caption becomes ``<unk>``)."""
        ids = [self.word2idx.get(w, UNK_ID) for w in tokenize(caption)[: self.max_len]]
        return ids or [UNK_ID]

    def encode_batch(self, captions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded ids (B, max_len) and lengths (B,)."""
        ids = torch.full((len(captions), self.max_len), PAD_ID, dtype=torch.long)
        lengths = torch.zeros(len(captions), dtype=torch.long)
        for row, caption in enumerate(captions):
            tokens = self.encode(caption)
            ids[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
            lengths[row] = len(tokens)
        return ids, lengths

    def save(self, path: Path | str) -> None:
        write_text(path, json.dumps({"word2idx": self.word2idx, "max_len": self.max_len}))

    @classmethod
    def load(cls, path: Path | str) -> Vocabulary:
        path = Path(path)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            word2idx = {str(k): int(v) for k, v in raw["word2idx"].items()}
            max_len = int(raw["max_len"])
        except FileNotFoundError:
            raise ConfigError(f"{path}: vocabulary file not found") from None
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"{path}: not a valid vocabulary file ({exc})") from None
        if word2idx.get(PAD) != PAD_ID or word2idx.get(UNK) != UNK_ID:
            raise ConfigError(f"{path}: vocabulary must map <pad> to 0 and <unk> to 1")
        return cls(word2idx=word2idx, max_len=max_len)
