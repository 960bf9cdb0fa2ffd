"""Small, reproducible stand-ins for *data* (never for services): an untrained DOVE model
directory, a folder of generated aerial-like images with captions as a prepared dataset, and
random archives of any size for the serving benchmarks (10k .. 1M images).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from dove_model.data.manifest import write_manifest
from dove_model.families.dove.settings import DoveSettings
from dove_model.families.dual.settings import DualSettings
from dove_model.index.encoder import ImageArrays

SCENES = {
    "farmland": ((90, 150, 60), "green farmland with rectangular fields"),
    "lake": ((40, 80, 160), "a blue lake surrounded by land"),
    "desert": ((210, 180, 120), "yellow desert with sand dunes"),
    "city": ((130, 130, 130), "a dense city with grey buildings and roads"),
}


def tiny_model_dir(
    target: Path,
    captions: list[str],
    *,
    seed: int = 0,
    embed_dim: int = 64,
    model: DoveSettings | None = None,
    eval_size: int = 64,
) -> Path:
    """An untrained DOVE model written in the model-directory format (contracts 3): small by
    default, or the architecture ``model`` describes (benchmarks time the real sizes)."""
    import torch

    from dove_model.families.dove.io import save_model_dir
    from dove_model.families.dove.model import DoveModel
    from dove_model.families.dove.vocab import Vocabulary
    from dove_model.model.preprocess import preprocessing_for

    torch.manual_seed(seed)
    params = model or DoveSettings(
        backbone="resnet18", pretrained=False, embed_dim=embed_dim, word_dim=32, vocab_min_freq=1
    )
    vocab = Vocabulary.build(captions, min_freq=1, max_len=params.max_len)
    return save_model_dir(
        DoveModel(params, len(vocab)),
        vocab,
        eval_size,
        Path(target),
        preprocessing_for(params.backbone),
    )


def scene_image(scene: str, index: int, size: int = 96) -> Image.Image:
    colour, _ = SCENES[scene]
    rng = np.random.default_rng(index)
    noise = rng.integers(-25, 25, size=(size, size, 3))
    pixels = np.clip(np.array(colour)[None, None, :] + noise, 0, 255).astype(np.uint8)
    img = Image.fromarray(pixels, "RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(3):
        x, y = rng.integers(0, size - 20, size=2)
        draw.rectangle([x, y, x + 16, y + 12], outline=(255, 255, 255))
    return img


def synthetic_dataset(target: Path, per_scene: int = 6, size: int = 96) -> Path:
    """A prepared dataset (images/ + manifest.parquet) of generated scenes, all split test."""
    import hashlib

    target = Path(target)
    (target / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    caption_id = 0
    for scene, (_, caption) in SCENES.items():
        for i in range(per_scene):
            image_id = f"{scene}_{i}"
            rel = f"images/{image_id}.png"
            scene_image(scene, i, size).save(target / rel)
            sha = hashlib.sha256((target / rel).read_bytes()).hexdigest()
            for variant in (caption, f"there is {caption}"):
                rows.append(
                    {
                        "image_id": image_id,
                        "image_path": rel,
                        "caption_id": caption_id,
                        "caption": variant,
                        "split": "test",
                        "sha256": sha,
                        "width": size,
                        "height": size,
                        "label": scene,
                        "source_line": caption_id + 1,
                    }
                )
                caption_id += 1
    write_manifest(pd.DataFrame(rows), target)
    return target


def random_archive(n_images: int, dim: int, *, seed: int = 0, chunk: int = 100_000) -> ImageArrays:
    """Unit-norm random float16 arrays standing in for an encoded archive of ``n_images``."""
    rng = np.random.default_rng(seed)
    out = {name: np.empty((n_images, dim), np.float16) for name in ("v_m", "v_mr", "r")}
    for start in range(0, n_images, chunk):
        stop = min(n_images, start + chunk)
        for name in out:
            block = rng.standard_normal((stop - start, dim), dtype=np.float32)
            block /= np.linalg.norm(block, axis=1, keepdims=True)
            out[name][start:stop] = block
    return ImageArrays(**out)


@dataclass(frozen=True)
class DemoDeployment:
    """A deployed tiny archive: what ``dove serve`` needs, for demos and tests."""

    dataset_dir: Path
    model_dir: Path
    index_dir: Path
    model_tag: str
    bentoml_home: Path


def deploy_synthetic(workdir: Path, *, per_scene: int = 6, seed: int = 0) -> DemoDeployment:
    """Generate data and an untrained model, import it into a BentoML store under
    ``workdir/bentoml`` and index the archive with it (the real ``deploy`` code path)."""
    workdir = Path(workdir)
    dataset = synthetic_dataset(workdir / "dataset", per_scene=per_scene)
    captions = [caption for _, caption in SCENES.values()]
    model_dir = tiny_model_dir(
        workdir / "model", [*captions, *(f"there is {c}" for c in captions)], seed=seed
    )
    return deploy_model(workdir, dataset, model_dir)


def deploy_model(workdir: Path, dataset: Path, model_dir: Path) -> DemoDeployment:
    """``model_dir`` imported into a BentoML store under ``workdir/bentoml`` (as ``dove
    deploy`` imports a champion) and ``dataset`` indexed with it under ``workdir/index``."""
    from dove_model.config import Params
    from dove_model.serving.deploy import deploy

    home = Path(workdir) / "bentoml"
    result = deploy(
        Params(),
        dataset,
        model_dir=model_dir,
        index_dir=Path(workdir) / "index",
        store_dir=home / "models",
        progress=False,
    )
    return DemoDeployment(dataset, model_dir, result.index_dir, result.model.tag, home)


def train_family_smoke(workdir: Path, family: str) -> tuple[Path, Path]:
    """Train ``family``'s tiny profile (``FamilySpec.tiny_profile``) on the smoke project (48
    synthetic scenes of 14 classes, seconds on 2 cores); returns (prepared dataset, model
    directory)."""
    import contextlib

    from dove_model.config import load_params
    from dove_model.data.prepare import prepare
    from dove_model.families.dispatch import train
    from dove_model.families.registry import family_spec
    from dove_model.testing.smoke import write_smoke_project

    workdir = Path(workdir).resolve()
    tiny = family_spec(family).tiny_profile(workdir / "family")
    overrides = {"train": {"profile": family, "profiles": {family: tiny}}}
    params_file = write_smoke_project(workdir, overrides)
    with contextlib.chdir(workdir):
        params = load_params(params_file)
        dataset = prepare(params, progress=False)
        result = train(dataset, params, Path(params.train.out_dir), progress=False)
    return workdir / dataset, workdir / result.model_dir


def deploy_family(workdir: Path, family: str) -> DemoDeployment:
    """A trained tiny model of ``family`` imported into a BentoML store under
    ``workdir/bentoml`` (as ``dove deploy`` imports a champion) and the smoke archive
    indexed with it."""
    workdir = Path(workdir)
    dataset, model_dir = train_family_smoke(workdir / "project", family)
    return deploy_model(workdir, dataset, model_dir)


def untrained_dual_model_dir(target: Path, model: DualSettings, eval_size: int) -> Path:
    """A dual model of the architecture ``model`` describes with fresh projection heads (the
    pretrained towers from the offline stores): benchmarks time the real sizes."""
    from dove_model.families.dual.io import save_dual_model_dir
    from dove_model.families.dual.model import assemble, build_towers
    from dove_model.model.preprocess import preprocessing_for

    image_tower, text_tower = build_towers(model, pretrained=True)
    dual = assemble(model, image_tower, text_tower, heads=None)
    return save_dual_model_dir(dual, eval_size, Path(target), preprocessing_for(model.backbone))


# ------------------------------------------------------------------ live index swaps
def publish_index_copy(root: Path, folder: Path, *, truncate_faiss: bool = False) -> str:
    """Copy the index folder ``folder`` in as a new version of the index root ``root`` and
    flip its pointer, as ``dove index build`` would (optionally with images.faiss cut in
    half: a broken version); returns the version id."""
    import shutil

    from dove_model.index.versions import new_version_id, set_current, version_dir

    version = new_version_id()
    target = version_dir(root, version)
    tmp = target.with_name(f".{version}.tmp")
    shutil.copytree(folder, tmp)
    if truncate_faiss:
        data = (tmp / "images.faiss").read_bytes()
        (tmp / "images.faiss").write_bytes(data[: len(data) // 2])
    tmp.rename(target)
    set_current(root, version)
    return version


@dataclass(frozen=True)
class TimedRequest:
    start: float  # time.perf_counter() when sent
    seconds: float
    status: int  # 0: no answer (connection error, timeout)


async def _search_load(
    url: str, concurrency: int, until: float, queries: list[str]
) -> list[TimedRequest]:
    import asyncio
    import time

    import httpx

    out: list[TimedRequest] = []
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def worker(offset: int) -> None:
            i = offset
            while time.perf_counter() < until:
                start = time.perf_counter()
                try:
                    body = {"query": queries[i % len(queries)], "k": 10}
                    status = (await client.post("/search_images", json=body)).status_code
                except httpx.HTTPError:
                    status = 0
                out.append(TimedRequest(start, time.perf_counter() - start, status))
                i += concurrency

        await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return out


def load_during(
    url: str,
    action: Callable[[], None],
    *,
    concurrency: int,
    seconds: float,
    action_at: float,
    queries: list[str],
) -> tuple[list[TimedRequest], float]:
    """Search at ``concurrency`` for ``seconds`` while ``action`` runs ``action_at`` seconds
    in (on this thread); returns every request and when the action started."""
    import asyncio
    import threading
    import time

    start = time.perf_counter()
    results: list[TimedRequest] = []
    runner = threading.Thread(
        target=lambda: results.extend(
            asyncio.run(_search_load(url, concurrency, start + seconds, queries))
        )
    )
    runner.start()
    time.sleep(action_at)
    acted = time.perf_counter()
    action()
    runner.join(seconds + 120)
    return results, acted


def wait_for_info(url: str, check: Callable[[dict], bool], timeout: float = 20.0) -> dict:
    """Poll ``/info`` until ``check(info)``; returns that info (raises TimeoutError)."""
    import time

    import httpx

    deadline = time.monotonic() + timeout
    while True:
        info = httpx.post(f"{url}/info", json={}, timeout=10).json()
        if check(info):
            return info
        if time.monotonic() > deadline:
            raise TimeoutError(f"/info never changed as expected: {info}")
        time.sleep(0.1)


@contextlib.contextmanager
def serving(
    deployment: DemoDeployment, log_file: Path, api_key: str | None = None
) -> Iterator[Any]:
    """A real ``bentoml serve`` of ``deployment`` (model from its BentoML store by tag) on a
    free 127.0.0.1 port, open to all when ``api_key`` is None; yields the ServiceProcess."""
    from dove_model.serving.launch import running_service, serving_env

    env = serving_env(
        model_tag=deployment.model_tag,
        index_dir=deployment.index_dir,
        bentoml_home=deployment.bentoml_home,
        api_key=api_key,
    )
    env.pop("DOVE_MODEL_DIR", None)
    if api_key is None:
        env.pop("DOVE_API_KEY", None)
    with running_service(env, log_file=log_file) as proc:
        yield proc
