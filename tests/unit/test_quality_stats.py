"""The derived columns the suites check, without Great Expectations."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from PIL import Image

from dove_model.model.tokens import tokenize
from dove_model.quality.caption_stats import caption_facts, split_facts
from dove_model.quality.image_stats import image_facts, inspect_image


def _manifest() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "image_id": ["a", "a", "b", "c"],
            "caption": ["Two red cars.", "", "two  RED cars", "A zebra crossing"],
            "split": ["train", "train", "test", "test"],
            "source_line": [2, 3, 4, 5],
        }
    )


def test_tokenize_matches_model_rule() -> None:
    assert tokenize("There're 3 planes, near-by!") == ["there", "re", "planes", "near", "by"]


def test_caption_facts() -> None:
    facts = caption_facts(_manifest())
    assert facts["caption_text"].isna().tolist() == [False, True, False, False]
    assert facts["n_tokens"].tolist()[0] == 3
    assert facts["shared_with_train"].tolist() == [False, False, True, False]
    assert facts["ref"].tolist()[1] == "line 3 (image a)"


def test_split_facts_oov_rate() -> None:
    (row,) = split_facts(_manifest()).to_dict(orient="records")
    assert row["split"] == "test"
    assert row["n_words"] == 6 and row["n_oov_words"] == 3  # a, zebra, crossing
    assert row["n_shared_with_train"] == 1


def test_image_facts(tmp_path: Path) -> None:
    grey = tmp_path / "grey.png"
    Image.linear_gradient("L").save(grey)
    flat = tmp_path / "flat.jpg"
    Image.new("RGB", (64, 48), (10, 200, 10)).save(flat)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(flat.read_bytes()[:200])
    frame = image_facts([grey, flat, broken, tmp_path / "gone.jpg"], workers=1, progress=False)
    assert frame["file_exists"].tolist() == [True, True, True, False]
    assert frame["decode_ok"].tolist()[:3] == [True, True, False]
    assert frame["mode"].tolist()[:2] == ["L", "RGB"]
    assert (frame["actual_width"][1], frame["actual_height"][1]) == (64, 48)
    assert frame["pixel_std"][0] > 50 and frame["pixel_std"][1] < 2
    assert "truncated" in frame["decode_error"][2].lower()


def test_inspect_without_decoding_still_hashes(tmp_path: Path) -> None:
    path = tmp_path / "x.png"
    Image.new("RGB", (8, 8)).save(path)
    facts = inspect_image(str(path), decode=False)
    assert facts.sha256_actual is not None and facts.decode_ok is None
