"""The chip grid: a scene's extent in its own CRS, at the target pixel size, cut into square
chips.

The grid starts at the scene's top-left corner and holds only whole target pixels that lie in
the scene (``floor(extent / pixel)``), so at the scene's own GSD it is the scene's pixel grid.
Chips step by ``chip_size - overlap``; the last chip of a row (column) is moved back to end on
the grid's edge instead of hanging over it, so chips of a scene larger than one chip hold no
padding. A scene smaller than a chip gives one chip, padded with nodata.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from affine import Affine

TOLERANCE = 1e-6  # pixels


@dataclass(frozen=True)
class TargetGrid:
    crs: str  # "EPSG:32632" or WKT
    transform: tuple[float, float, float, float, float, float]  # affine a, b, c, d, e, f
    width: int
    height: int
    pixel: float  # CRS units per pixel (square pixels)

    @property
    def affine(self) -> Affine:
        return Affine(*self.transform)


@dataclass(frozen=True)
class ChipWindow:
    """Chip (``row``, ``col``) of the chip grid: pixels [x, x + size) x [y, y + size)."""

    row: int
    col: int
    x: int
    y: int
    size: int

    def bounds(self, grid: TargetGrid) -> tuple[float, float, float, float]:
        """left, bottom, right, top in the grid's CRS (north-up grid)."""
        left, top = grid.affine @ (self.x, self.y)
        right, bottom = grid.affine @ (self.x + self.size, self.y + self.size)
        return left, bottom, right, top


def _whole(pixels: float) -> int:
    """Whole pixels in ``pixels`` (at least 1); within 1e-6 of an integer counts as it
    (a UTM extent of 512 x 0.3 m is 153.59999999962747 m)."""
    nearest = round(pixels)
    return max(1, nearest if abs(pixels - nearest) < TOLERANCE else math.floor(pixels))


def target_grid(bounds: tuple[float, float, float, float], crs: str, pixel: float) -> TargetGrid:
    """The north-up grid of ``pixel``-sized cells over ``bounds`` (left, bottom, right, top)."""
    left, bottom, right, top = bounds
    width, height = _whole((right - left) / pixel), _whole((top - bottom) / pixel)
    return TargetGrid(crs, (pixel, 0.0, left, 0.0, -pixel, top), width, height, pixel)


def axis_starts(length: int, size: int, stride: int) -> list[int]:
    """Chip offsets along one axis of ``length`` pixels (last one flush with the edge)."""
    if length <= size:
        return [0]
    starts = list(range(0, length - size + 1, stride))
    if starts[-1] != length - size:
        starts.append(length - size)
    return starts


def chip_layout(grid: TargetGrid, size: int, overlap: int) -> tuple[list[int], list[int]]:
    """The chips' row offsets (y) and column offsets (x) on ``grid``."""
    stride = size - overlap
    return axis_starts(grid.height, size, stride), axis_starts(grid.width, size, stride)


def chip_count(grid: TargetGrid, size: int, overlap: int) -> tuple[int, int]:
    """Chip rows and chip columns of ``grid``."""
    ys, xs = chip_layout(grid, size, overlap)
    return len(ys), len(xs)


def chip_windows(
    grid: TargetGrid, size: int, overlap: int, start: int = 0, stop: int | None = None
) -> list[ChipWindow]:
    """Chips ``start`` to ``stop`` (row-major) of ``grid``; all of them by default."""
    ys, xs = chip_layout(grid, size, overlap)
    stop = len(ys) * len(xs) if stop is None else min(stop, len(ys) * len(xs))
    cols = len(xs)
    return [
        ChipWindow(i // cols, i % cols, xs[i % cols], ys[i // cols], size)
        for i in range(start, stop)
    ]


def task_ranges(rows: int, cols: int, chips_per_task: int) -> list[tuple[int, int]]:
    """[start, stop) ranges of whole chip rows, about ``chips_per_task`` chips each, over a
    ``rows`` x ``cols`` chip grid."""
    total = rows * cols
    step = max(1, chips_per_task // cols) * cols
    return [(start, min(start + step, total)) for start in range(0, total, step)]
