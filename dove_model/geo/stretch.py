"""From scene values to 8-bit chip pixels.

8-bit bands pass unchanged. Every other band (16-bit, float, signed) is stretched linearly per
scene: its ``low`` and ``high`` percentiles (2nd and 98th by default) of the valid pixels become
0 and 255, values outside are clipped. The percentiles come from one decimated read of the
whole band (longest side ``stretch_side`` pixels, nearest neighbour; GDAL takes an overview
where the file has one), so every chip of a scene shares one mapping, a scene is never read
whole, and a re-run computes the same mapping (the same chip bytes). Nodata pixels are 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from rasterio.enums import Resampling
from rasterio.io import DatasetReader


@dataclass(frozen=True)
class BandStretch:
    """``low`` -> 0, ``high`` -> 255; both None: an 8-bit band, unchanged."""

    low: float | None = None
    high: float | None = None

    @property
    def identity(self) -> bool:
        return self.low is None or self.high is None


def decimated_shape(width: int, height: int, side: int) -> tuple[int, int]:
    factor = max(1, math.ceil(max(width, height) / side))
    return max(1, math.ceil(height / factor)), max(1, math.ceil(width / factor))


def estimate(
    src: DatasetReader, indexes: Sequence[int], percentiles: tuple[float, float], side: int
) -> list[BandStretch]:
    """The stretch of bands ``indexes`` of ``src`` (one decimated, masked read)."""
    if all(src.dtypes[i - 1] == "uint8" for i in indexes):
        return [BandStretch() for _ in indexes]
    rows, cols = decimated_shape(src.width, src.height, side)
    sample = src.read(
        list(indexes),
        out_shape=(len(indexes), rows, cols),
        resampling=Resampling.nearest,
        masked=True,
    )
    out = []
    for band, index in enumerate(indexes):
        if src.dtypes[index - 1] == "uint8":
            out.append(BandStretch())
            continue
        values = np.ma.compressed(sample[band]).astype(np.float64)
        values = values[np.isfinite(values)]
        if values.size == 0:  # no valid pixel: every chip of it is skipped anyway
            out.append(BandStretch(0.0, 1.0))
            continue
        low, high = (float(v) for v in np.percentile(values, percentiles))
        out.append(BandStretch(low, high if high > low else low + 1.0))
    return out


def to_uint8(
    channels: Sequence[np.ndarray], valid: np.ndarray, stretches: Sequence[BandStretch]
) -> np.ndarray:
    """(height, width, channels) uint8 pixels of a chip; invalid pixels 0."""
    out = np.zeros((*valid.shape, len(channels)), dtype=np.uint8)
    for c, (band, stretch) in enumerate(zip(channels, stretches, strict=True)):
        if stretch.identity:
            out[..., c] = band
        else:
            assert stretch.low is not None and stretch.high is not None
            scaled = (band.astype(np.float32) - stretch.low) * (
                255.0 / (stretch.high - stretch.low)
            )
            np.clip(scaled, 0.0, 255.0, out=scaled)
            out[..., c] = np.rint(np.nan_to_num(scaled, nan=0.0))
    out[~valid] = 0
    return out
