"""Dihedral views: what the dual family averages an image over, and trains on."""

from __future__ import annotations

import pytest
import torch

from dove_model.families.dual.settings import DualSettings
from dove_model.model.views import dihedral_views, mean_over_views, view_count


class PixelSum(torch.nn.Module):
    """A deterministic 'tower' that is *not* rotation-invariant: position-weighted sums."""

    def __init__(self, side: int) -> None:
        super().__init__()
        self.weights = torch.nn.Parameter(torch.randn(4, 3, side, side), requires_grad=False)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bchw,fchw->bf", pixels, self.weights)


@pytest.mark.parametrize(("rotations", "mirror"), [(1, False), (1, True), (2, True), (4, False)])
def test_views_start_with_the_image_and_are_distinct(rotations: int, mirror: bool) -> None:
    pixels = torch.randn(2, 3, 8, 8)
    views = dihedral_views(pixels, rotations, mirror)
    assert len(views) == view_count(rotations, mirror)
    assert torch.equal(views[0], pixels)
    flat = torch.stack([v.flatten() for v in views])
    assert len(torch.unique(flat, dim=0)) == len(views)


def test_four_turns_make_the_embedding_rotation_invariant() -> None:
    torch.manual_seed(0)
    tower, pixels = PixelSum(8), torch.randn(3, 3, 8, 8)
    turned = torch.rot90(pixels, 1, (-2, -1))
    four = mean_over_views(tower, pixels, 4, mirror=False)
    assert torch.allclose(mean_over_views(tower, turned, 4, mirror=False), four, atol=1e-4)
    # one view is not: the test would catch a tower that ignores the turns
    assert not torch.allclose(tower(turned), tower(pixels), atol=1e-2)
    # and the eight dihedral views are invariant to a mirror as well
    eight = mean_over_views(tower, pixels, 4, mirror=True)
    assert torch.allclose(mean_over_views(tower, pixels.flip(-1), 4, mirror=True), eight, atol=1e-4)


def test_the_mean_is_over_each_images_own_views() -> None:
    tower, pixels = PixelSum(8), torch.randn(2, 3, 8, 8)
    both = mean_over_views(tower, pixels, 2, mirror=True)
    alone = mean_over_views(tower, pixels[1:], 2, mirror=True)
    assert torch.allclose(both[1:], alone, atol=1e-5)


def test_unsupported_rotation_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="rotations"):
        dihedral_views(torch.zeros(1, 3, 4, 4), 3, False)
    with pytest.raises(ValueError):
        DualSettings(tta_rotations=3)


def test_a_model_directory_without_rotations_keeps_its_old_views() -> None:
    """Old dual config.json files have tta_mirror only: the image and its mirror, as before."""
    params = DualSettings()
    assert (params.tta_rotations, params.tta_mirror) == (1, True)
    tower, pixels = PixelSum(8), torch.randn(2, 3, 8, 8)
    old = (tower(pixels) + tower(pixels.flip(-1))) / 2
    assert torch.allclose(mean_over_views(tower, pixels, 1, mirror=True), old, atol=1e-5)
