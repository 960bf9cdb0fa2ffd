"""Text side: word embedding -> BiGRU with the two directions kept apart -> DTGA -> F_G, T_G.

DTGA (Digging Text Genome Assistant) [paper, as described in DOVE.md]:
    T_f = GSA(H_f), T_b = GSA(H_b), GSA(H) = softmax(Q K^T / sqrt(D) + pad) V * sigmoid(W_g H)
    F_G = MLP(T_f * sigmoid(W_p H_b) + T_b * sigmoid(W_q H_f)),  T_G = masked mean of F_G.
Without DTGA (ablation) F_G = (H_f + H_b) / 2 per word, i.e. a mean-pooled BiGRU.
With ``model.glove_path`` training starts the word embedding from a GloVe-format file
(:func:`init_word_embeddings`); a saved model carries the vectors in its weights.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from dove_model.errors import ConfigError
from dove_model.families.dove.settings import DoveSettings
from dove_model.families.dove.vocab import PAD_ID


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over dim 1 of (B, L, D) where ``mask`` (B, L) is True."""
    weights = mask.to(x.dtype).unsqueeze(-1)
    return (x * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


class GatedSelfAttention(nn.Module):
    """``with_attention`` false: no own Q/K, the attention map is always passed in (shared)."""

    def __init__(self, dim: int, with_attention: bool = True) -> None:
        super().__init__()
        if with_attention:
            self.query = nn.Linear(dim, dim)
            self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.gate = nn.Linear(dim, dim)

    def attention(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        logits = self.query(h) @ self.key(h).transpose(1, 2) / math.sqrt(h.shape[-1])
        logits = logits.masked_fill(~mask[:, None, :], torch.finfo(logits.dtype).min)
        return torch.softmax(logits, dim=-1)

    def forward(
        self, h: torch.Tensor, mask: torch.Tensor, attn: torch.Tensor | None = None
    ) -> torch.Tensor:
        if attn is None:
            attn = self.attention(h, mask)
        return (attn @ self.value(h)) * torch.sigmoid(self.gate(h))


class DTGA(nn.Module):
    def __init__(self, dim: int, share_attention: bool) -> None:
        super().__init__()
        self.share_attention = share_attention
        self.forward_attn = GatedSelfAttention(dim)
        self.backward_attn = GatedSelfAttention(dim, with_attention=not share_attention)
        self.gate_p = nn.Linear(dim, dim)
        self.gate_q = nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim))

    def forward(self, h_f: torch.Tensor, h_b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        shared = None
        if self.share_attention:  # [ours] "less attention": one map for both directions
            shared = self.forward_attn.attention(h_f + h_b, mask)
        t_f = self.forward_attn(h_f, mask, shared)
        t_b = self.backward_attn(h_b, mask, shared)
        t_fb = t_f * torch.sigmoid(self.gate_p(h_b))
        t_bf = t_b * torch.sigmoid(self.gate_q(h_f))
        return self.mlp(t_fb + t_bf)


def _glove_number(raw: bytes, where: str, line_no: int, word: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        text = raw.decode("utf-8", "replace")
        raise ConfigError(f"{where}:{line_no}: {word!r}: {text!r} is not a finite number")
    return value


def load_glove(
    path: Path | str, word2idx: dict[str, int], word_dim: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Vocabulary rows of a GloVe-format text file -> (ids (K,), vectors (K, word_dim)).

    Each non-blank line is a word and ``word_dim`` numbers, whitespace separated. Every line's
    width is checked (a file of another dimension fails on its first line); the numbers are
    parsed for the vocabulary's words only, so a large file costs little more than reading it.
    ``<pad>`` is never taken from the file and a repeated word keeps its first vector.
    A missing file, a line of another width, a word that is not UTF-8, a number that does not
    parse or is not finite, and a file sharing no word with the vocabulary are ConfigErrors
    naming the file (and line).
    """
    path = Path(path)
    where = f"{path} (model.glove_path)"
    ids: list[int] = []
    rows: list[list[float]] = []
    seen: set[int] = set()
    try:
        with path.open("rb") as handle:
            for line_no, line in enumerate(handle, start=1):
                parts = line.split()
                if not parts:
                    continue
                if len(parts) != word_dim + 1:
                    raise ConfigError(
                        f"{where}:{line_no}: expected a word and {word_dim} numbers "
                        f"(model.word_dim), found {len(parts) - 1} values after the first field"
                    )
                try:
                    word = parts[0].decode("utf-8")
                except UnicodeDecodeError:
                    raise ConfigError(f"{where}:{line_no}: the word is not UTF-8") from None
                idx = word2idx.get(word)
                if idx is None or idx == PAD_ID or idx in seen:
                    continue
                values = [_glove_number(v, where, line_no, word) for v in parts[1:]]
                seen.add(idx)
                ids.append(idx)
                rows.append(values)
    except FileNotFoundError:
        raise ConfigError(f"{where}: GloVe file not found") from None
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read the GloVe file ({exc})") from None
    if not ids:
        raise ConfigError(
            f"{where}: none of the {len(word2idx)} vocabulary words is in the file "
            "(wrong file? the vocabulary is lowercase)"
        )
    return torch.tensor(ids, dtype=torch.long), torch.tensor(rows, dtype=torch.float32)


def init_word_embeddings(encoder: TextEncoder, word2idx: dict[str, int], path: Path | str) -> int:
    """Overwrite the embedding rows of the words found in the GloVe file ``path``.

    Called by training on a freshly built model only: words not in the file keep their
    (seeded) random init, and no random numbers are drawn. A saved model never needs the file
    again (its weights hold the vectors). Returns how many vocabulary words were found.
    """
    weight = encoder.embed.weight
    if weight.shape[0] != len(word2idx):
        raise ValueError(f"embedding has {weight.shape[0]} rows, vocabulary {len(word2idx)}")
    ids, vectors = load_glove(path, word2idx, weight.shape[1])
    with torch.no_grad():
        weight[ids.to(weight.device)] = vectors.to(weight)
    return len(ids)


class TextEncoder(nn.Module):
    """ids (B, L), lengths (B,) -> F_G (B, L, D), T_G (B, D), mask (B, L).

    ``pad_to_input`` false: L is the batch's longest caption (training; cheaper).
    """

    def __init__(self, params: DoveSettings, vocab_size: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, params.word_dim, padding_idx=0)
        self.gru = nn.GRU(params.word_dim, params.embed_dim, batch_first=True, bidirectional=True)
        self.dtga = DTGA(params.embed_dim, params.share_attention) if params.use_dtga else None

    def forward(
        self, ids: torch.Tensor, lengths: torch.Tensor, pad_to_input: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # work on the batch's longest caption only; pad back to the input width at the end
        width = ids.shape[1]
        longest = int(lengths.max())
        ids = ids[:, :longest]
        mask = torch.arange(longest, device=ids.device)[None, :] < lengths.to(ids.device)[:, None]
        packed = pack_padded_sequence(
            self.embed(ids), lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        out, _ = self.gru(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=longest)
        h_f, h_b = out.chunk(2, dim=-1)
        f_g = self.dtga(h_f, h_b, mask) if self.dtga is not None else (h_f + h_b) / 2
        f_g = f_g * mask.unsqueeze(-1).to(f_g.dtype)
        t_g = masked_mean(f_g, mask)
        if pad_to_input and longest < width:
            f_g = nn.functional.pad(f_g, (0, 0, 0, width - longest))
            mask = nn.functional.pad(mask, (0, width - longest))
        return f_g, t_g, mask
