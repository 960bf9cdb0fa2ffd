"""Typed parameters: ``params.yaml`` is the single source; this module validates it.

Each stage reads its own section. Nothing here touches disk or the environment at import
time: call :func:`load_params` once at the entry point and pass the result down.

Section owners (keep edits inside your section): data/validate -> data layer;
model/train/evaluate -> model library; register/pipeline -> pipeline; index/serve -> serving.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
    model_validator,
)

from dove_model.errors import ConfigError
from dove_model.families.registry import LEGACY_FAMILY, UnknownFamily, family_names, settings_class
from dove_model.loop_params import FeedbackParams, MonitoringParams

# the number format of a dual model's frozen towers when serving and indexing
# (dove_model/model/precision.py)
TowerPrecision = Literal["auto", "float32", "bfloat16"]

DEFAULT_PARAMS_FILE = Path("params.yaml")


class Section(BaseModel):
    """Base for every section: unknown keys are an error (a typo must not pass silently)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- data layer
class SynthParams(Section):
    n_images: int = Field(2000, ge=12)
    seed: int = 0
    image_size: int = Field(256, ge=64, le=1024)
    val_fraction: float = Field(0.1, ge=0.0, lt=0.5)
    test_fraction: float = Field(0.1, ge=0.0, lt=0.5)
    captions_per_image: int = Field(5, ge=1, le=10)


class DataParams(Section):
    source: Literal["synth", "karpathy", "amfmn", "pir", "csv"] = "synth"
    path: str | None = None  # input of a real format (file or folder)
    images_dir: str | None = None  # where the images of a real format live, if elsewhere
    name: str = "synth"
    prepared_dir: str = "artifacts/prepared"  # canonical layout: images/ + manifest.parquet
    link_images: bool = True  # hard-link (fallback: copy) real images; never re-encode
    synth: SynthParams = SynthParams()


class Bounds(Section):
    min: float
    max: float


class ValidateParams(Section):
    report_dir: str = "reports/validation"
    caption_tokens: Bounds = Bounds(min=2, max=60)
    captions_per_image: Bounds = Bounds(min=1, max=10)
    image_side: Bounds = Bounds(min=32, max=8192)
    blank_std: float = 2.0  # pixel standard deviation below this = blank image
    max_oov_rate: float = 0.25  # val/test words unknown to the train vocabulary
    max_cross_split_caption_rate: float = 1.0  # warning only: share of test captions in train
    sample_images: int | None = None  # decode only this many images (None = all)
    workers: int | None = None  # processes decoding images (None = CPU count, at most 8)


# ------------------------------------------------------------------------ model library
class FamilySettings(Section):
    """A model family's settings: ``train.profiles.<profile>.model``. Each family subclasses
    it in its own folder (``families/<name>/settings.py``) with ``family: Literal[<name>]``
    and its own fields; the family registry (``families/registry.py``) maps the name to it."""

    family: str

    def resolved(self) -> FamilySettings:
        """The settings with anything left to the code (e.g. ``backbone: auto``) decided."""
        return self


def _family_settings(value: Any) -> FamilySettings:
    """A profile's ``model`` mapping as its family's settings: the union is discriminated by
    ``family`` and checked for every profile at load, so a typo anywhere is an error."""
    if isinstance(value, FamilySettings):
        return value
    if not isinstance(value, dict):
        raise ValueError("expected a mapping that names its family")
    if "family" not in value:
        raise ValueError(f"state the model family (family: one of {', '.join(family_names())})")
    try:
        settings = settings_class(value["family"])
    except UnknownFamily as exc:
        raise ValueError(str(exc)) from None
    try:
        return settings.model_validate(value)
    except ValidationError as exc:
        raise ValueError(_first_error(exc)) from None


ModelSettings = Annotated[SerializeAsAny[FamilySettings], BeforeValidator(_family_settings)]


class TrainProfile(Section):
    epochs: int = Field(50, ge=1)
    batch_size: int = Field(100, ge=2)
    lr: float = 2e-4
    weight_decay: float = Field(0.0, ge=0.0)  # the dual family's AdamW (DOVE: Adam, none)
    backbone_lr: float | None = None  # a trained (not frozen) backbone's lr; None = lr
    warmup_epochs: float = Field(0.0, ge=0.0)  # linear warm-up of every lr, in epochs
    lr_decay: float = 0.7
    lr_step_epochs: int = Field(20, ge=1)
    resize: int = 278
    crop: int = 256
    eval_size: int = 256
    rotation_degrees: float = 90.0
    num_workers: int = 0
    amp: bool = True  # bf16 autocast on GPU; ignored on CPU
    compile: bool = False
    # images and convolution weights in NHWC while training (the layout GPU tensor cores
    # prefer); the saved model is the same either way
    channels_last: bool = False
    early_stopping_patience: int = 10
    max_minutes: float | None = None  # stop after this wall-clock budget
    grad_clip: float | None = 2.0
    feature_cache: bool = True  # with freeze_backbone: reuse pooled backbone features
    # the model this profile trains: its family and that family's settings (unset fields
    # take the family's defaults, in families/<name>/settings.py)
    model: ModelSettings


class TrainParams(Section):
    # profiles live in params.yaml; the code's one default profile is every field's default
    profile: str = "default"
    seed: int = 0
    out_dir: str = "artifacts/train"
    cache_dir: str = ".cache/features"
    device: str = "auto"
    val_split: str = "val"  # model selection split (UCM has none: use "test" there)
    profiles: dict[str, TrainProfile] = Field(
        default_factory=lambda: {"default": TrainProfile(model={"family": LEGACY_FAMILY})}
    )

    @model_validator(mode="after")
    def _profile_exists(self) -> TrainParams:
        if self.profile not in self.profiles:
            raise ValueError(
                f"train.profile {self.profile!r} is not one of {sorted(self.profiles)}"
            )
        return self

    @property
    def active(self) -> TrainProfile:
        return self.profiles[self.profile]


class EvaluateParams(Section):
    out_file: str = "metrics.json"
    split: str = "test"
    chunk_size: int = 256
    two_stage_k: int = 100


# ----------------------------------------------------------------------------- pipeline
class GateParams(Section):
    """Absolute floors per metric (percent) and the allowed regression vs the champion."""

    min_metrics: dict[str, float] = {"mR": 5.0}
    max_regression: float = 1.0  # mR points the challenger may lose against the champion


class RegisterParams(Section):
    model_name: str = "dove-rs-retrieval"
    tracking_uri: str = "sqlite:///mlruns/mlflow.db"  # MLFLOW_TRACKING_URI overrides it
    experiment: str = "dove"
    gates: GateParams = GateParams()


class PipelineParams(Section):
    name: str = "dove-retraining"
    compiled_file: str = "components/pipeline.yaml"
    image: str = "ghcr.io/dove-ops/dove:0.1.0"
    local_root: str = "local_outputs"


# ------------------------------------------------------------------------------ serving
class IndexParams(Section):
    out_dir: str = "artifacts/index"
    exact_max: int = 50_000  # above this many images use an approximate index
    # hnsw | ivf: float vectors; ivf_pq: product-quantised codes (pq_m bytes a vector at 8
    # bits); hnsw_sq8: HNSW over 8-bit scalar-quantised vectors (docs/serving.md, capacity)
    approximate: Literal["ivf", "hnsw", "ivf_pq", "hnsw_sq8"] = "hnsw"
    ivf_nlist: int = 1024
    ivf_nprobe: int = 16
    hnsw_m: int = 32
    hnsw_ef_search: int = 64
    pq_m: int = Field(64, ge=1)  # ivf_pq sub-quantisers (must divide the embedding size)
    pq_nbits: int = Field(8, ge=4, le=12)  # bits per sub-quantiser code
    batch_size: int = 64
    splits: list[str] | None = None  # dataset splits to index (None = every split)
    shards: int = Field(1, ge=1)  # the KFP deploy step encodes this many shards in parallel
    keep_versions: int = Field(2, ge=1)  # index versions kept beside the current one
    # a dual model's towers: bfloat16 where the CPU has it natively (auto), or forced
    tower_precision: TowerPrecision = "auto"


class MapParams(Section):
    """The search page's map (issue 28). No basemap by default: footprints and thumbnails are
    drawn on a blank map, as offline; a basemap is an XYZ tile URL template the *browser*
    fetches (the service never does), e.g. ``https://tile.openstreetmap.org/{z}/{x}/{y}.png``."""

    basemap_url: str | None = None
    attribution: str = ""  # shown on the map (a tile provider's licence usually requires it)
    max_zoom: int = Field(19, ge=1, le=24)

    @model_validator(mode="after")
    def _a_tile_template(self) -> MapParams:
        url = self.basemap_url
        if url is not None and (
            not url.startswith(("https://", "http://", "/"))
            or not all(f"{{{key}}}" in url for key in "xyz")
        ):
            raise ValueError(
                f"serve.map.basemap_url {url[:80]!r}: an http(s) (or /path) tile URL with "
                "{z}, {x} and {y} in it"
            )
        return self


class ServeParams(Section):
    host: str = "127.0.0.1"
    port: int = 3000
    candidates_k: int = 100
    max_k: int = 100
    max_query_chars: int = 500
    max_upload_bytes: int = 10 * 1024 * 1024
    max_pixels: int = 40_000_000  # per image, as its header declares (413 above)
    max_request_pixels: int = 80_000_000  # all images of one request together (413 above)
    decode_side: int = Field(1024, ge=64)  # large uploads are decoded down to this short side
    max_decode_mib: int = Field(200, ge=16)  # estimated decoder memory per image (413 above)
    max_texts_per_request: int = Field(64, ge=1)  # /encode_texts (413 above)
    max_images_per_request: int = Field(16, ge=1)  # /encode_images (413 above)
    max_form_parts: int = Field(32, ge=1)  # multipart parts per request (400 above)
    max_part_header_bytes: int = Field(8192, ge=256)  # per multipart part (400 above)
    max_filename_chars: int = Field(200, ge=16)  # an upload's file name (400 above)
    max_header_bytes: int = Field(16384, ge=1024)  # all request headers (431 above)
    max_headers: int = Field(64, ge=8)  # request header count (431 above)
    header_timeout_s: float = Field(10.0, gt=0)  # to receive a request's headers (408, closed)
    body_timeout_s: float = Field(15.0, gt=0)  # longest wait between body chunks (408)
    api_key_env: str = "DOVE_API_KEY"
    # The two batching limits are BentoML decorator arguments, fixed when service.py is
    # imported: the service uses these defaults, a value in params.yaml does not reach it.
    max_batch_size: int = 32
    max_latency_ms: int = 1000  # BentoML sheds (503) a request predicted to wait longer
    thumbnail_px: int = Field(160, ge=16, le=1024)
    model_tag: str = "dove-rs-retrieval:latest"  # BentoML store tag the service loads
    op_threads: int = Field(1, ge=1)  # torch/FAISS threads per call (calls run in parallel)
    # text search: concurrent queries are coalesced into batches of up to search_max_batch,
    # run on search_threads threads (dove_model/serving/coalesce.py)
    search_max_batch: int = Field(32, ge=1)
    search_threads: int = Field(1, ge=1)
    index_poll_s: float = Field(5.0, gt=0)  # how often the service looks for a new index
    # a dual model's query encoder: bfloat16 where the CPU has it natively (auto; 1.3x faster
    # queries on an AMX CPU), or forced; the gates always evaluate in float32 (model/precision.py)
    tower_precision: TowerPrecision = "auto"
    map: MapParams = MapParams()  # the search page's map: basemap (none: offline)

    @model_validator(mode="after")
    def _batching_is_fixed(self) -> ServeParams:
        """A batching limit set in params.yaml would silently do nothing: refuse it."""
        for name in ("max_batch_size", "max_latency_ms"):
            fixed = type(self).model_fields[name].default
            if getattr(self, name) != fixed:
                raise ValueError(
                    f"serve.{name} is fixed at {fixed}: it is a BentoML decorator argument "
                    "in service.py, which params.yaml does not reach; change it there"
                )
        return self


# ------------------------------------------------------------------------ geo archive
class ArchiveChecks(Section):
    """Bounds of the geo gate on an ingested archive (``dove archive validate``;
    dove_model/quality/archive_suites.py)."""

    min_scenes: int = Field(1, ge=0)
    max_scenes: int | None = Field(None, ge=1)
    min_chips: int = Field(1, ge=0)
    min_chips_per_scene: int = Field(1, ge=0)
    max_chips_per_scene: int | None = Field(None, ge=1)


class ArchiveParams(Section):
    """``dove archive ingest`` as a pipeline stage (``dvc repro archive``, the DAG's
    ``ingest_archive`` task); nothing is ingested while ``source`` is null."""

    source: str | None = None  # STAC catalog / collection / item, GeoTIFF(s), a STAC API URL
    out_dir: str = "artifacts/chips"  # the chips dataset (dove index build -s indexes it)
    report_dir: str = "reports/archive"  # the geo gate's summary.json and Data Docs
    ingest: dict[str, Any] = {}  # dove_model.geo.settings.IngestParams fields (chip_size, ...)
    query: dict[str, Any] = {}  # SourceQuery fields (collections, bbox, datetime, max_items)
    checks: ArchiveChecks = ArchiveChecks()


# --------------------------------------------------------------------------------- root
class Params(Section):
    data: DataParams = DataParams()
    validate_: ValidateParams = Field(ValidateParams(), alias="validate")
    train: TrainParams = Field(default_factory=TrainParams)  # built on use: see registry.py
    evaluate: EvaluateParams = EvaluateParams()
    register_: RegisterParams = Field(RegisterParams(), alias="register")
    pipeline: PipelineParams = PipelineParams()
    index: IndexParams = IndexParams()
    serve: ServeParams = ServeParams()
    archive: ArchiveParams = ArchiveParams()
    feedback: FeedbackParams = FeedbackParams()  # the feedback loop: dove_model/loop_params.py
    monitoring: MonitoringParams = MonitoringParams()

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def model_for_training(self) -> FamilySettings:
        """The active training profile's model settings, with what is left to the code
        (e.g. ``backbone: auto``) decided."""
        return self.train.active.model.resolved()


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}"


def parse_params(raw: dict[str, Any], source: str = "params") -> Params:
    try:
        return Params.model_validate(raw or {})
    except ValidationError as exc:
        raise ConfigError(f"{source}: invalid parameter {_first_error(exc)}") from None


def load_params(path: Path | str = DEFAULT_PARAMS_FILE) -> Params:
    """Read and validate ``params.yaml``; a missing or malformed file is a ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: parameter file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        where = f":{line + 1}" if line is not None else ""
        raise ConfigError(f"{path}{where}: not valid YAML") from None
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return parse_params(raw or {}, source=str(path))
