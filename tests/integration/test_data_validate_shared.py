"""The data gate on the real benchmark data (skipped when ../shared/datasets is absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dove_model.config import parse_params
from dove_model.data.importer import import_dataset
from dove_model.quality.validate import validate

pytestmark = [pytest.mark.integration, pytest.mark.shared_data]


def _check(result, name: str):
    (check,) = [c for c in result.checks if c.name == name]
    return check


def test_rsitmd_empty_captions_fail_the_gate_by_line(shared_datasets: Path, tmp_path: Path) -> None:
    source = shared_datasets / "captions-only" / "RSITMD"
    if not source.is_dir():
        pytest.skip(f"{source} not found")
    dataset = import_dataset("amfmn", source, tmp_path / "rsitmd", progress=False)
    result = validate(dataset, parse_params({}), tmp_path / "report", progress=False)
    assert not result.passed
    blank = _check(result, "caption_not_blank")
    assert blank.severity == "critical" and blank.unexpected_count == 20
    assert blank.offenders[0] == "line 9631 (image mountain_2378)"
    assert {ref.split("(image ")[1] for ref in blank.offenders} == {
        "mountain_2378)",
        "railwaystation_3254)",
        "storagetanks_4367)",
        "viaduct_4635)",
    }
    # captions only: every image file is reported missing, by id
    missing = _check(result, "image_file_exists")
    assert missing.unexpected_count == 4743
    message = result.failure_message()
    assert "image mountain_2378: lines 9631, 9632, 9633, 9634, 9635" in message


def test_ucm_passes_the_gate(ucm_dir: Path, tmp_path: Path) -> None:
    dataset = import_dataset("karpathy", ucm_dir, tmp_path / "ucm", progress=False)
    result = validate(dataset, parse_params({}), tmp_path / "report", progress=False)
    assert result.passed, result.failure_message()
    assert result.counts["images_decoded"] == 1890
    # UCM reuses captions across images of a class: reported, not fatal
    assert not _check(result, "caption_not_shared_with_train").success
