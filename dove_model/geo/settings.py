"""What ``dove archive ingest`` does, as data: the chip settings and the STAC query.

:class:`IngestParams` holds every setting that decides a chip's pixels (size, overlap,
target GSD, bands, stretch, resampling, format) and how the work runs (workers, task size).
:meth:`IngestParams.chip_settings` is the part an output folder records: a re-run into the same
folder must use the same chip settings (``dove_model.geo.journal``).
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dove_model.errors import ConfigError

ImageFormat = Literal["png", "jpeg"]
ResamplingName = Literal["auto", "nearest", "bilinear", "cubic", "average", "lanczos"]
# settings that do not change a chip's bytes or place: left out of the recorded settings
RUN_ONLY_FIELDS = frozenset({"workers", "chips_per_task", "gdal_cache_mb"})


class IngestParams(BaseModel):
    """Chip settings; defaults are those of the CLI."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    chip_size: int = Field(256, ge=16, le=4096)  # pixels, square
    overlap: int = Field(0, ge=0)  # pixels shared by neighbouring chips
    gsd: float | None = Field(None, gt=0)  # target metres per pixel; None = the scene's own
    bands: tuple[str, ...] | None = None  # 1 or 3 names or 1-based indices; None = RGB/grey
    asset: str | None = None  # STAC asset key holding the image (None: chosen, see bands.py)
    max_nodata: float = Field(0.5, ge=0.0, le=1.0)  # chips with a larger nodata share skipped
    percentiles: tuple[float, float] = (2.0, 98.0)  # stretch of non-8-bit bands, per scene
    stretch_side: int = Field(1024, ge=64)  # longest side of the read the stretch comes from
    resampling: ResamplingName = "auto"  # auto: nearest / average (coarser) / bilinear (finer)
    image_format: ImageFormat = "png"
    jpeg_quality: int = Field(90, ge=50, le=100)
    split: str = "test"  # the manifest split of every chip
    workers: int | None = Field(None, ge=1)  # processes; None = the usable CPU cores
    chips_per_task: int = Field(256, ge=1)  # chips one worker task reads (whole chip rows)
    gdal_cache_mb: int = Field(64, ge=8)  # GDAL block cache per worker

    @model_validator(mode="after")
    def _consistent(self) -> IngestParams:
        if self.overlap >= self.chip_size:
            raise ValueError(f"overlap {self.overlap} must be smaller than chip_size")
        low, high = self.percentiles
        if not 0.0 <= low < high <= 100.0:
            raise ValueError(f"percentiles {self.percentiles} must satisfy 0 <= low < high <= 100")
        if self.bands is not None and len(self.bands) not in (1, 3):
            raise ValueError(
                f"bands {','.join(self.bands)}: give 1 band (grey) or 3 (red, green, blue)"
            )
        return self

    def chip_settings(self) -> dict[str, Any]:
        """The settings an output folder records (JSON types)."""
        return self.model_dump(mode="json", exclude=set(RUN_ONLY_FIELDS))

    def worker_count(self) -> int:
        return self.workers or max(1, len(os.sched_getaffinity(0)))


class SourceQuery(BaseModel):
    """Which items to take from a STAC source (search filters apply to a STAC API only)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    collections: tuple[str, ...] | None = None
    bbox: tuple[float, float, float, float] | None = None  # west, south, east, north (EPSG:4326)
    datetime: str | None = None  # RFC 3339 instant or interval, as STAC item search takes it
    max_items: int | None = Field(None, ge=1)

    @property
    def is_search(self) -> bool:
        """True when a filter only a STAC API can apply is set."""
        return self.bbox is not None or self.datetime is not None


def first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    message = str(err["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def ingest_params(**values: Any) -> IngestParams:
    """:class:`IngestParams` from keyword values (None = the default); a ConfigError naming the
    first bad value otherwise."""
    given = {k: v for k, v in values.items() if v is not None}
    try:
        return IngestParams(**given)
    except ValidationError as exc:
        raise ConfigError(f"archive ingest: {first_error(exc)}") from None


def source_query(**values: Any) -> SourceQuery:
    given = {k: v for k, v in values.items() if v is not None}
    try:
        return SourceQuery(**given)
    except ValidationError as exc:
        raise ConfigError(f"archive ingest: {first_error(exc)}") from None


def split_list(text: str | None) -> tuple[str, ...] | None:
    """``"B4, B3,B2"`` -> ``("B4", "B3", "B2")``; None or blank -> None."""
    if text is None or not text.strip():
        return None
    return tuple(part.strip() for part in text.split(",") if part.strip())


def parse_bbox(text: str | None) -> tuple[float, float, float, float] | None:
    """``"west,south,east,north"`` in degrees."""
    parts = split_list(text)
    if parts is None:
        return None
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise ConfigError(f"--bbox {text!r}: four numbers west,south,east,north") from None
    if len(values) != 4:
        raise ConfigError(f"--bbox {text!r}: four numbers west,south,east,north")
    return values[0], values[1], values[2], values[3]
