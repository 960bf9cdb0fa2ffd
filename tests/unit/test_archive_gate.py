"""The geo gate (issue 28): real Great Expectations suites over an archive ingested here (two
COG scenes, `dove_model.geo.ingest`). The archive as ingested passes; a copy broken in one
place per expectation fails each expectation, naming the offending chip, scene or archive,
and nothing else fails with it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import geopandas as gpd
import pytest
from shapely.affinity import translate
from shapely.geometry import Polygon

from dove_model.config import ArchiveChecks
from dove_model.data.manifest import DATASET_INFO_FILE
from dove_model.errors import DataFormatError
from dove_model.geo.ingest import ingest
from dove_model.geo.outputs import CHIPS_FILE, read_chips
from dove_model.geo.settings import IngestParams
from dove_model.quality.archive_gate import validate_archive
from dove_model.quality.archive_suites import ARCHIVE_SUITES
from dove_model.quality.archive_table import crs_parseable, datetime_parseable
from dove_model.quality.validate import ValidationResult
from dove_model.testing.geo_deployment import two_scenes

CHIPS = IngestParams(chip_size=32, workers=1)


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("archive")
    ingest(two_scenes(root / "scenes"), root / "chips", CHIPS, progress=False)
    return root / "chips"


@pytest.fixture(scope="module")
def good(archive: Path, tmp_path_factory: pytest.TempPathFactory) -> ValidationResult:
    return validate_archive(archive, ArchiveChecks(), tmp_path_factory.mktemp("report"))


def test_an_ingested_archive_passes_and_writes_reports(good: ValidationResult) -> None:
    assert good.passed, good.failure_message("geo gate")
    assert all(c.success for c in good.checks)
    assert {c.name for c in good.checks} == {
        c.name for f in ARCHIVE_SUITES.values() for c in f(ArchiveChecks())
    }
    assert good.counts["scenes"] == 2 and good.counts["chips"] == 32
    summary = json.loads(good.summary_file.read_text())
    assert summary["passed"] and summary["counts"]["chips"] == 32
    assert good.data_docs_index.is_file()


def _bowtie(geometry: Polygon) -> Polygon:
    (w, s, e, n) = geometry.bounds
    return Polygon([(w, s), (e, n), (e, s), (w, n)])  # self-intersecting


# how to break the chips table for each check; returns it and the chip the check must name
def _broken(name: str, chips: gpd.GeoDataFrame) -> tuple[gpd.GeoDataFrame, str]:
    first = str(chips.loc[0, "chip_id"])
    if name == "footprint_valid":
        chips.loc[0, "geometry"] = _bowtie(chips.geometry.iloc[0])
    elif name == "footprint_in_lonlat_range":
        chips.loc[0, "geometry"] = translate(chips.geometry.iloc[0], xoff=200.0)
    elif name == "footprints_in_epsg_4326":
        chips = chips.set_crs("EPSG:3857", allow_override=True)
    elif name == "crs_present":
        chips.loc[0, "crs"] = None
    elif name == "crs_parseable":
        chips.loc[0, "crs"] = "EPSG:999999"
    elif name == "datetime_parseable":
        chips.loc[0, "datetime"] = "2024-06-31T10:00:00Z"
    elif name == "datetime_present":
        chips.loc[0, "datetime"] = None
    elif name == "chip_id_unique":
        chips.loc[1, "chip_id"] = first
    elif name == "chip_count_matches_dataset_json":
        chips = chips.iloc[1:].reset_index(drop=True)
    return chips, first


TABLE_BREAKS = [
    "footprint_valid",
    "footprint_in_lonlat_range",
    "footprints_in_epsg_4326",
    "crs_present",
    "crs_parseable",
    "datetime_parseable",
    "datetime_present",
    "chip_id_unique",
    "chip_count_matches_dataset_json",
]
BOUND_BREAKS = {  # the archive as ingested (2 scenes of 16 chips) against bounds it misses
    "chip_count_within_bounds": ArchiveChecks(min_chips=33),
    "chips_per_scene_within_bounds": ArchiveChecks(max_chips_per_scene=15),
    "scene_count_within_bounds": ArchiveChecks(min_scenes=3),
}


def test_every_expectation_has_a_failing_case_below() -> None:
    names = {c.name for f in ARCHIVE_SUITES.values() for c in f(ArchiveChecks())}
    assert names == set(TABLE_BREAKS) | set(BOUND_BREAKS)


@pytest.mark.parametrize("name", TABLE_BREAKS)
def test_each_chip_table_expectation_fails_on_its_break(
    name: str, archive: Path, tmp_path: Path
) -> None:
    broken = shutil.copytree(archive, tmp_path / "chips")
    chips, offender = _broken(name, read_chips(broken))
    chips.to_parquet(broken / CHIPS_FILE, index=False)
    result = validate_archive(broken, ArchiveChecks(), tmp_path / "report")
    failed = {c.name: c for c in result.checks if not c.success}
    assert set(failed) == {name}, sorted(failed)
    check = failed[name]
    if check.severity == "critical":
        assert not result.passed and name in result.failure_message("geo gate")
    else:
        assert result.passed  # a warning is reported, the gate still passes
    if name == "footprints_in_epsg_4326":
        assert check.unexpected_count == 32
    elif name == "chip_count_matches_dataset_json":
        assert check.unexpected_count == 1
    else:
        rows = 2 if name == "chip_id_unique" else 1  # both rows of the repeated id
        assert check.offenders == [offender] * rows and check.unexpected_count == rows


@pytest.mark.parametrize("name", sorted(BOUND_BREAKS))
def test_each_count_expectation_fails_outside_its_bounds(
    name: str, archive: Path, tmp_path: Path
) -> None:
    result = validate_archive(archive, BOUND_BREAKS[name], tmp_path / "report")
    failed = [c for c in result.checks if not c.success]
    assert [c.name for c in failed] == [name] and not result.passed
    if name == "chips_per_scene_within_bounds":
        assert failed[0].unexpected_count == 2 and len(failed[0].offenders) == 2
    elif name == "chip_count_within_bounds":
        assert failed[0].observed == 32


def test_a_folder_that_is_not_an_archive_is_refused(tmp_path: Path) -> None:
    (tmp_path / DATASET_INFO_FILE).write_text("{}")
    with pytest.raises(DataFormatError, match=r"no chips\.parquet"):
        validate_archive(tmp_path, ArchiveChecks(), tmp_path / "report")


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("2024-06-02T10:20:31Z", True),
        ("2024-06-02T10:20:31.5+02:00", True),
        (None, True),
        ("2024-06-02T10:20:31", False),  # no offset: not RFC 3339
        ("2024-06-02", False),
        ("2024-02-30T00:00:00Z", False),
        ("yesterday", False),
    ],
)
def test_datetime_parseable(value: str | None, ok: bool) -> None:
    assert datetime_parseable(value) is ok


@pytest.mark.parametrize(
    ("value", "ok"),
    [("EPSG:32632", True), ("EPSG:999999", False), (None, True), ("", False), ("x", False)],
)
def test_crs_parseable(value: str | None, ok: bool) -> None:
    assert crs_parseable(value) is ok
