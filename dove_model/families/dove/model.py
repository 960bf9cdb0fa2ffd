"""The DOVE model: visual side, text side, ROAM and the global constraint in one module.

Ablation switches (DoveSettings): ``use_roam`` false -> a VSE baseline scored by cos(V_M, T_G);
``use_dtga`` false -> mean-pooled BiGRU; ``lambda_g`` 0 -> no global constraint.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dove_model.families.dove.loss import ranking_loss
from dove_model.families.dove.roam import IFA, IGA
from dove_model.families.dove.settings import DoveSettings
from dove_model.families.dove.text import TextEncoder
from dove_model.families.dove.visual import Backbone, PooledFeatures, VisualHead


@dataclass(frozen=True)
class ImageEmbeddings:
    """Unit vectors (N, D): v_m (global), v_mr (ROAM image side), r (region guide)."""

    v_m: torch.Tensor
    v_mr: torch.Tensor
    r: torch.Tensor


@dataclass(frozen=True)
class TextEmbeddings:
    """t_g (M, D) unit; words (M, L, D) = W_t F_G (F_G without ROAM); mask (M, L) bool."""

    t_g: torch.Tensor
    words: torch.Tensor
    mask: torch.Tensor


@dataclass(frozen=True)
class LossParts:
    total: torch.Tensor
    roam: torch.Tensor
    global_: torch.Tensor


class DoveModel(nn.Module):
    def __init__(self, params: DoveSettings, vocab_size: int) -> None:
        super().__init__()
        self.params = params
        self.backbone = Backbone(params)
        self.head = VisualHead(params, self.backbone.level_channels, self.backbone.region_channels)
        self.text = TextEncoder(params, vocab_size)
        self.ifa = IFA(params.embed_dim) if params.use_roam else None
        self.iga = IGA(params.embed_dim) if params.use_roam else None
        if params.freeze_backbone:
            self.backbone.requires_grad_(False)

    def train(self, mode: bool = True) -> DoveModel:
        super().train(mode)
        if self.params.freeze_backbone:  # frozen BatchNorm statistics too
            self.backbone.eval()
        return self

    # ------------------------------------------------------------------ embeddings
    def image_embeddings(self, features: PooledFeatures) -> ImageEmbeddings:
        f_m, v_m, f_r = self.head(features)
        v_m = F.normalize(v_m, dim=-1)
        if self.ifa is None or self.iga is None or f_r is None:
            return ImageEmbeddings(v_m=v_m, v_mr=v_m, r=v_m)
        v_mr = F.normalize(self.ifa(f_m, f_r), dim=-1)
        return ImageEmbeddings(v_m=v_m, v_mr=v_mr, r=self.iga.region_vector(f_r))

    def encode_image(
        self, images: torch.Tensor, boxes: torch.Tensor | None = None
    ) -> ImageEmbeddings:
        return self.image_embeddings(self.backbone(images, boxes))

    def encode_text(
        self, ids: torch.Tensor, lengths: torch.Tensor, pad_to_input: bool = True
    ) -> TextEmbeddings:
        f_g, t_g, mask = self.text(ids, lengths, pad_to_input)
        words = self.iga.word_vectors(f_g, mask) if self.iga is not None else f_g
        return TextEmbeddings(t_g=F.normalize(t_g, dim=-1), words=words, mask=mask)

    # ---------------------------------------------------------------------- scores
    def global_score(self, image: ImageEmbeddings, text: TextEmbeddings) -> torch.Tensor:
        return image.v_m @ text.t_g.T

    def score(self, image: ImageEmbeddings, text: TextEmbeddings) -> torch.Tensor:
        """S (N_img, N_txt): ROAM's cos(V_MR_i, T_RG_ij), or the global score without ROAM."""
        if self.iga is None:
            return self.global_score(image, text)
        return self.iga.cross_scores(image.v_mr, image.r, text.words, text.mask)

    def pair_score(self, image: ImageEmbeddings, text: TextEmbeddings) -> torch.Tensor:
        """Row p of ``image`` against row p of ``text`` -> (P,)."""
        if self.iga is None:
            return (image.v_m * text.t_g).sum(dim=-1)
        return self.iga.pair_scores(image.v_mr, image.r, text.words, text.mask)

    def text_candidate_score(self, image: ImageEmbeddings, text: TextEmbeddings) -> torch.Tensor:
        """``image`` fields (T, K, D): caption t against its K candidate images -> (T, K)."""
        if self.iga is None:
            return (image.v_m * text.t_g[:, None, :]).sum(dim=-1)
        return self.iga.text_candidate_scores(image.v_mr, image.r, text.words, text.mask)

    # ------------------------------------------------------------------------ loss
    def loss(
        self,
        features: PooledFeatures,
        ids: torch.Tensor,
        lengths: torch.Tensor,
        image_index: torch.Tensor,
    ) -> LossParts:
        """``features`` of the batch's distinct images; caption j belongs to image_index[j]."""
        image = self.image_embeddings(features)
        text = self.encode_text(ids, lengths, pad_to_input=False)
        positive = image_index[:, None] == image_index[None, :]
        if self.params.same_text_positive:
            positive = positive | (ids[:, None, :] == ids[None, :, :]).all(dim=-1)
        p = self.params
        global_scores = self.global_score(image, text)[image_index]
        global_loss = ranking_loss(global_scores, positive, p.margin, p.hardest_negative)
        if self.iga is None:  # VSE baseline: the global score is the score
            return LossParts(total=global_loss, roam=global_loss.detach(), global_=global_loss)
        roam_scores = self.score(image, text)[image_index]
        roam_loss = ranking_loss(roam_scores, positive, p.margin, p.hardest_negative)
        # lambda_g = 0 keeps the term in the graph (zero gradient) so DDP sees every parameter
        total = roam_loss + p.lambda_g * global_loss
        return LossParts(total=total, roam=roam_loss, global_=global_loss)

    def forward(
        self,
        ids: torch.Tensor,
        lengths: torch.Tensor,
        image_index: torch.Tensor,
        images: torch.Tensor | None = None,
        levels: torch.Tensor | None = None,
        regions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Training loss from raw images or cached pooled features (what DDP wraps)."""
        if images is not None:
            features = self.backbone(images)
        elif levels is not None and regions is not None:
            features = PooledFeatures(levels=levels, regions=regions)
        else:
            raise ValueError("forward needs images or cached levels + regions")
        return self.loss(features, ids, lengths, image_index).total
