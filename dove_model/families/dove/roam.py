"""ROAM, Regional-Oriented Attention Module [paper figure: IFA + IGA].

IFA (image only) fuses multi-scale tokens with regions into V_MR; IGA lets the regions of an
image steer the caption's words, so the caption embedding T_RG_ij depends on the image and the
score S(i, j) = cos(V_MR_i, T_RG_ij) is pairwise.

[ours] r_i is L2-normalised (it is stored per gallery image and used as a unit direction), so the
IGA gate logit is G_jc . r_i without the 1/sqrt(D) factor: the scale is carried by W_t.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class IFA(nn.Module):
    """F_M (B, N_m, D), F_R (B, N_r, D) -> V_MR (B, D)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.w_a = nn.Linear(dim, dim)
        self.w_b = nn.Linear(dim, dim)
        self.w_h = nn.Linear(2 * dim, dim)

    def forward(self, f_m: torch.Tensor, f_r: torch.Tensor) -> torch.Tensor:
        a = self.w_a(f_m)
        b = self.w_b(f_r)
        s = torch.sigmoid(a @ b.transpose(1, 2) / math.sqrt(a.shape[-1]))
        a2 = a + s @ b
        b2 = b + s.transpose(1, 2) @ a
        return self.w_h(torch.cat([a2.mean(dim=1), b2.mean(dim=1)], dim=-1))


class IGA(nn.Module):
    """Region guidance of the text: r_i (from F_R), G_j (from F_G) -> T_RG_ij."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.w_r = nn.Linear(dim, dim)
        self.w_t = nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim))

    def region_vector(self, f_r: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.w_r(f_r.mean(dim=1)), dim=-1)

    def word_vectors(self, f_g: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.w_t(f_g) * mask.unsqueeze(-1).to(f_g.dtype)

    def cross_scores(
        self, v_mr: torch.Tensor, r: torch.Tensor, g: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """All pairs: v_mr, r (N_v, D) unit; g (N_t, L, D); mask (N_t, L) -> (N_v, N_t)."""
        maskf = mask.to(g.dtype)
        lengths = maskf.sum(dim=1).clamp_min(1.0)
        mean_g = g.sum(dim=1) / lengths[:, None]
        gate = torch.sigmoid(torch.einsum("tld,vd->vtl", g, r)) * maskf[None]
        h = mean_g[None] + torch.einsum("vtl,tld->vtd", gate, g) / lengths[None, :, None]
        t_rg = F.normalize(h + self.mlp(h), dim=-1)
        return torch.einsum("vtd,vd->vt", t_rg, v_mr)

    def pair_scores(
        self, v_mr: torch.Tensor, r: torch.Tensor, g: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """Matched pairs: row p of each input is one (image, caption) pair -> (P,)."""
        maskf = mask.to(g.dtype)
        lengths = maskf.sum(dim=1).clamp_min(1.0)
        gate = torch.sigmoid(torch.einsum("pld,pd->pl", g, r)) * maskf
        h = (g.sum(dim=1) + torch.einsum("pl,pld->pd", gate, g)) / lengths[:, None]
        t_rg = F.normalize(h + self.mlp(h), dim=-1)
        return (t_rg * v_mr).sum(dim=-1)

    def text_candidate_scores(
        self, v_mr: torch.Tensor, r: torch.Tensor, g: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """Each caption against its own K images: v_mr, r (T, K, D); g (T, L, D) -> (T, K).

        The text-major form of two-stage re-ranking: a caption's words are read once for all
        of its candidates (a batched matrix product instead of K gathers).
        """
        maskf = mask.to(g.dtype)
        lengths = maskf.sum(dim=1).clamp_min(1.0)
        mean_g = g.sum(dim=1) / lengths[:, None]
        gate = torch.sigmoid(torch.einsum("tld,tkd->tkl", g, r)) * maskf[:, None, :]
        h = mean_g[:, None] + torch.einsum("tkl,tld->tkd", gate, g) / lengths[:, None, None]
        t_rg = F.normalize(h + self.mlp(h), dim=-1)
        return (t_rg * v_mr).sum(dim=-1)
