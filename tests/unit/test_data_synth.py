"""The synthetic default dataset: deterministic, varied, with every class in every split."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dove_model.config import SynthParams
from dove_model.data.synth import CAPTIONS_FILE, render_one, render_synth
from dove_model.data.synth_scenes import SCENES

SMALL = SynthParams(n_images=56, seed=3, val_fraction=0.25, test_fraction=0.25)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "synth"
    render_synth(out, SMALL, workers=2, progress=False)
    return out


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            h.update(path.relative_to(folder).as_posix().encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def test_same_seed_same_bytes_whatever_the_workers(rendered: Path, tmp_path: Path) -> None:
    again = render_synth(tmp_path / "again", SMALL, workers=1, progress=False).out_dir
    assert _digest(again) == _digest(rendered)
    other = SynthParams(**{**SMALL.model_dump(), "seed": 4})
    assert _digest(render_synth(tmp_path / "other", other, progress=False).out_dir) != _digest(
        rendered
    )


def test_layout_classes_splits_and_captions(rendered: Path) -> None:
    with (rendered / CAPTIONS_FILE).open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 56 * 5
    assert len(SCENES) >= 12
    by_image: dict[str, list[str]] = {}
    for row in rows:
        by_image.setdefault(row["image"], []).append(row["caption"])
        assert (rendered / "images" / row["image"]).is_file()
    assert all(len(set(c)) == 5 for c in by_image.values()), "5 different captions per image"
    for split in ("train", "val", "test"):
        labels = {r["label"] for r in rows if r["split"] == split}
        assert labels == set(SCENES), split
    with Image.open(rendered / "images" / rows[0]["image"]) as img:
        assert (img.mode, img.size) == ("RGB", (256, 256))


@pytest.mark.parametrize("label", sorted(SCENES))
def test_captions_state_the_drawn_attributes(label: str) -> None:
    index = list(SCENES).index(label)
    rng = np.random.default_rng([0, index])
    _, facts = SCENES[label](rng, 128)
    _, _, captions = render_one(index, 0, 128, 5)
    text = " ".join(captions).lower()
    for key, value in facts.attributes.items():
        if key == "count":
            continue  # stated as a number word, checked below
        assert str(value).lower() in text, (label, key, value, captions)
    if "count" in facts.attributes:
        from dove_model.data.synth_scenes import NUMBERS

        assert NUMBERS[int(facts.attributes["count"])] in text


def test_classes_are_visually_distinct() -> None:
    """Mean colours of two renderings of one class are closer than those of other classes."""
    means = {}
    for i, label in enumerate(SCENES):
        _, jpeg, _ = render_one(i, 0, 64, 1)
        import io

        means[label] = np.asarray(Image.open(io.BytesIO(jpeg)), dtype=np.float32).mean((0, 1))
    distinct = {tuple(np.round(m / 8)) for m in means.values()}
    assert len(distinct) >= len(SCENES) - 2
