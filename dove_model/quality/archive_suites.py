"""The geo gate's Great Expectations suites (issue 28): an ingested archive's chip footprints
are valid lon/lat polygons, each chip names a CRS that parses, acquisition times parse as
RFC 3339, chip ids are unique, and the scene and chip counts lie within
``archive.checks`` and agree with ``dataset.json``. Same ``Check`` / severity model as the
data gate (``dove_model.quality.suites``)."""

from __future__ import annotations

import great_expectations.expectations as gxe

from dove_model.config import ArchiveChecks
from dove_model.quality.archive_table import EXPECTED_FOOTPRINT_CRS
from dove_model.quality.suites import CRITICAL, WARNING, Check, check


def chip_checks(p: ArchiveChecks) -> list[Check]:
    return [
        check(
            "footprint_valid",
            CRITICAL,
            gxe.ExpectColumnValuesToBeInSet,
            column="footprint_valid",
            value_set=[True],
        ),
        check(
            "footprint_in_lonlat_range",
            CRITICAL,
            gxe.ExpectColumnValuesToBeInSet,
            column="footprint_in_range",
            value_set=[True],
        ),
        check(
            "footprints_in_epsg_4326",
            CRITICAL,
            gxe.ExpectColumnValuesToBeInSet,
            column="footprint_crs",
            value_set=[EXPECTED_FOOTPRINT_CRS],
        ),
        check("crs_present", CRITICAL, gxe.ExpectColumnValuesToNotBeNull, column="crs"),
        check(
            "crs_parseable",
            CRITICAL,
            gxe.ExpectColumnValuesToBeInSet,
            column="crs_parseable",
            value_set=[True],
        ),
        check(
            "datetime_parseable",
            CRITICAL,
            gxe.ExpectColumnValuesToBeInSet,
            column="datetime_parseable",
            value_set=[True],
        ),
        check("datetime_present", WARNING, gxe.ExpectColumnValuesToNotBeNull, column="datetime"),
        check("chip_id_unique", CRITICAL, gxe.ExpectColumnValuesToBeUnique, column="chip_id"),
        check(
            "chip_count_within_bounds",
            CRITICAL,
            gxe.ExpectTableRowCountToBeBetween,
            min_value=p.min_chips,
        ),
    ]


def scene_checks(p: ArchiveChecks) -> list[Check]:
    return [
        check(
            "chips_per_scene_within_bounds",
            CRITICAL,
            gxe.ExpectColumnValuesToBeBetween,
            column="n_chips",
            min_value=p.min_chips_per_scene,
            max_value=p.max_chips_per_scene,
        ),
    ]


def archive_checks(p: ArchiveChecks) -> list[Check]:
    return [
        check(
            "scene_count_within_bounds",
            CRITICAL,
            gxe.ExpectColumnValuesToBeBetween,
            column="n_scenes",
            min_value=p.min_scenes,
            max_value=p.max_scenes,
        ),
        check(
            "chip_count_matches_dataset_json",
            CRITICAL,
            gxe.ExpectColumnPairValuesToBeEqual,
            column_A="n_chips",
            column_B="recorded_n_chips",
        ),
    ]


ARCHIVE_SUITES = {"chips": chip_checks, "scenes": scene_checks, "archive": archive_checks}
