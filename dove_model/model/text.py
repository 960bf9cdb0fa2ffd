"""Text side: word embedding -> BiGRU with the two directions kept apart -> DTGA -> F_G, T_G.

DTGA (Digging Text Genome Assistant) [paper, as described in DOVE.md]:
    T_f = GSA(H_f), T_b = GSA(H_b), GSA(H) = softmax(Q K^T / sqrt(D) + pad) V * sigmoid(W_g H)
    F_G = MLP(T_f * sigmoid(W_p H_b) + T_b * sigmoid(W_q H_f)),  T_G = masked mean of F_G.
Without DTGA (ablation) F_G = (H_f + H_b) / 2 per word, i.e. a mean-pooled BiGRU.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from dove_model.config import ModelParams
from dove_model.errors import ConfigError


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


def load_glove(path: Path | str, word2idx: dict[str, int], word_dim: int) -> torch.Tensor:
    """Rows of a GloVe-format text file for the words we know (others stay random)."""
    path = Path(path)
    weights = torch.randn(len(word2idx), word_dim) * 0.1
    try:
        with path.open(encoding="utf-8") as handle:
            for line_no, line in enumerate(handle, start=1):
                word, *values = line.rstrip().split(" ")
                if word in word2idx:
                    if len(values) != word_dim:
                        raise ConfigError(
                            f"{path}:{line_no}: vector has {len(values)} values, "
                            f"model.word_dim is {word_dim}"
                        )
                    weights[word2idx[word]] = torch.from_numpy(np.asarray(values, np.float32))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read GloVe file ({exc})") from None
    weights[0] = 0.0
    return weights


class TextEncoder(nn.Module):
    """ids (B, L), lengths (B,) -> F_G (B, L, D), T_G (B, D), mask (B, L).

    ``pad_to_input`` false: L is the batch's longest caption (training; cheaper).
    """

    def __init__(self, params: ModelParams, vocab_size: int) -> None:
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
