"""Windowed reads of a chip from its scene's files, resampled onto the chip grid.

Each file stays open for a whole task; a chip reads only its own window. When a file's CRS is
the grid's and both are north-up, the chip's window in the file (fractional where the GSD
differs) is read with GDAL's resampling straight into the chip's shape (``read(window=...,
out_shape=..., resampling=...)``); otherwise, and for chips reaching past the file's edge, a
``WarpedVRT`` onto the grid warps just that window. Validity comes from the file's masks
(nodata value, internal mask, alpha) and, through the VRT, from the file's extent.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.enums import MaskFlags, Resampling
from rasterio.io import DatasetReader
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window, from_bounds

from dove_model.geo.bands import BandRef
from dove_model.geo.tiling import ChipWindow, TargetGrid

TOLERANCE = 1e-6  # pixels: a window this close to an integer edge is taken as on it


def resampling_for(name: str, native_pixel: float, target_pixel: float) -> Resampling:
    """``auto``: nearest at the scene's own GSD, average when coarser, bilinear when finer."""
    if name != "auto":
        return Resampling[name]
    ratio = target_pixel / native_pixel
    if abs(ratio - 1.0) < 1e-6:
        return Resampling.nearest
    return Resampling.average if ratio > 1.0 else Resampling.bilinear


@dataclass(frozen=True)
class BandGroup:
    """The bands read from one file: its ``indexes``, landing on chip ``channels``."""

    href: str
    indexes: tuple[int, ...]
    channels: tuple[int, ...]


def band_groups(bands: Sequence[BandRef]) -> list[BandGroup]:
    hrefs = list(dict.fromkeys(b.href for b in bands))
    return [
        BandGroup(
            href,
            tuple(b.index for b in bands if b.href == href),
            tuple(c for c, b in enumerate(bands) if b.href == href),
        )
        for href in hrefs
    ]


def _snap(value: float) -> float:
    nearest = round(value)
    return float(nearest) if abs(value - nearest) < TOLERANCE else float(value)


class FileReader:
    """Chips of one open file on the grid ``grid``."""

    def __init__(
        self, src: DatasetReader, indexes: Sequence[int], grid: TargetGrid, resampling: Resampling
    ) -> None:
        self.src, self.indexes, self.grid, self.resampling = src, list(indexes), grid, resampling
        transform = src.transform
        self.direct = (
            src.crs == CRS.from_user_input(grid.crs) and transform.b == 0 and transform.d == 0
        )
        self.all_valid = all(
            src.mask_flag_enums[i - 1] == [MaskFlags.all_valid] for i in self.indexes
        )
        self._vrt: WarpedVRT | None = None

    def source_window(self, chip: ChipWindow) -> Window:
        """The chip's window in this file's pixels (fractional where the GSD differs)."""
        window = from_bounds(*chip.bounds(self.grid), transform=self.src.transform)
        return Window(
            *(_snap(v) for v in (window.col_off, window.row_off, window.width, window.height))
        )

    def _inside(self, window: Window) -> bool:
        return (
            window.col_off >= -TOLERANCE
            and window.row_off >= -TOLERANCE
            and window.col_off + window.width <= self.src.width + TOLERANCE
            and window.row_off + window.height <= self.src.height + TOLERANCE
        )

    def read(self, chip: ChipWindow) -> tuple[np.ndarray, np.ndarray]:
        """(bands, size, size) values and the (size, size) validity of ``chip``."""
        window = self.source_window(chip) if self.direct else None
        if window is None or not self._inside(window):
            return self._read_warped(chip)
        shape = (len(self.indexes), chip.size, chip.size)
        data = self.src.read(
            self.indexes, window=window, out_shape=shape, resampling=self.resampling
        )
        if self.all_valid:
            return data, np.ones(shape[1:], dtype=bool)
        masks = self.src.read_masks(
            self.indexes, window=window, out_shape=shape, resampling=Resampling.nearest
        )
        return data, masks.min(axis=0) > 0

    def _read_warped(self, chip: ChipWindow) -> tuple[np.ndarray, np.ndarray]:
        vrt = self._warped(chip)
        window = Window(chip.x, chip.y, chip.size, chip.size)
        data = vrt.read(self.indexes, window=window)
        masks = vrt.read_masks(self.indexes, window=window)
        return data, masks.min(axis=0) > 0

    def _warped(self, chip: ChipWindow) -> WarpedVRT:
        if self._vrt is None:
            options: dict[str, Any] = (
                {"nodata": self.src.nodata} if self.src.nodata is not None else {"add_alpha": True}
            )
            self._vrt = WarpedVRT(
                self.src,
                crs=self.grid.crs,
                transform=self.grid.affine,
                width=max(self.grid.width, chip.x + chip.size),
                height=max(self.grid.height, chip.y + chip.size),
                resampling=self.resampling,
                **options,
            )
        return self._vrt

    def close(self) -> None:
        if self._vrt is not None:
            self._vrt.close()


class SceneReader(contextlib.AbstractContextManager["SceneReader"]):
    """The chips of one scene: every selected band, from however many files hold them."""

    def __init__(self, bands: Sequence[BandRef], grid: TargetGrid, resampling: Resampling) -> None:
        self.groups = band_groups(bands)
        self.n_channels = len(bands)
        self.grid, self.resampling = grid, resampling
        self._stack = contextlib.ExitStack()
        self.files: list[FileReader] = []

    def __enter__(self) -> SceneReader:
        for group in self.groups:
            src = self._stack.enter_context(rasterio.open(group.href))
            reader = FileReader(src, group.indexes, self.grid, self.resampling)
            self._stack.callback(reader.close)
            self.files.append(reader)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def read(self, chip: ChipWindow) -> tuple[list[np.ndarray], np.ndarray]:
        """Each channel's (size, size) values, and where all of them are valid."""
        channels: list[np.ndarray] = [np.empty(0)] * self.n_channels
        valid = np.ones((chip.size, chip.size), dtype=bool)
        for group, reader in zip(self.groups, self.files, strict=True):
            data, ok = reader.read(chip)
            valid &= ok
            for band, channel in enumerate(group.channels):
                channels[channel] = data[band]
        return channels, valid

    def scene_window(self, chip: ChipWindow) -> Window:
        """The chip's window in the first file's pixels."""
        reader = self.files[0]
        if reader.direct:
            return reader.source_window(chip)
        from rasterio.warp import transform_bounds

        bounds = transform_bounds(self.grid.crs, reader.src.crs, *chip.bounds(self.grid))
        return from_bounds(*bounds, transform=reader.src.transform)
