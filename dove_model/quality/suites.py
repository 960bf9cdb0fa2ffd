"""The Great Expectations suites of the data gate, with a severity per expectation.

``critical`` failures stop the pipeline (the validate stage exits 1); ``warning`` failures are
reported. Each suite runs over one derived table (see ``caption_stats`` / ``image_table``)
whose ``ref`` column names the row (caption line and image id, image id, split) in messages.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import great_expectations.expectations as gxe

from dove_model.config import ValidateParams

CRITICAL, WARNING = "critical", "warning"
_CONTROL_CHARS = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"  # tabs/newlines are tolerated


@dataclass(frozen=True)
class Check:
    """One expectation of a suite, named so that reports read as sentences."""

    name: str
    severity: str
    kind: type[gxe.Expectation]
    kwargs: dict[str, Any]

    def build(self) -> gxe.Expectation:
        """A new GE expectation (one instance can belong to one suite only); its severity and
        name go into GE too, so the Data Docs show them."""
        return self.kind(**self.kwargs, severity=self.severity, meta={"check": self.name})


SuiteBuilder = Callable[[ValidateParams], list[Check]]


def check(name: str, severity: str, kind: type[gxe.Expectation], **kwargs: Any) -> Check:
    return Check(name, severity, kind, kwargs)


def caption_checks(p: ValidateParams) -> list[Check]:
    return [
        check(
            "caption_not_blank", CRITICAL, gxe.ExpectColumnValuesToNotBeNull, column="caption_text"
        ),
        check(
            "caption_printable",
            CRITICAL,
            gxe.ExpectColumnValuesToMatchRegex,
            column="caption_text",
            regex=_CONTROL_CHARS,
        ),
        check(
            "caption_tokens_within_bounds",
            WARNING,
            gxe.ExpectColumnValuesToBeBetween,
            column="n_tokens",
            min_value=p.caption_tokens.min,
            max_value=p.caption_tokens.max,
        ),
        check(
            "caption_unique_within_image",
            WARNING,
            gxe.ExpectCompoundColumnsToBeUnique,
            column_list=["image_id", "caption_norm"],
            ignore_row_if="any_value_is_missing",
        ),
        check(
            "caption_not_shared_with_train",
            WARNING,
            gxe.ExpectColumnValuesToBeInSet,
            column="shared_with_train",
            value_set=[False],
        ),
    ]


def image_checks(p: ValidateParams) -> list[Check]:
    return _image_file_checks() + _image_content_checks(p)


def _image_file_checks() -> list[Check]:
    """The file is there, decodes and is the file the manifest recorded."""
    return [
        check(
            "image_file_exists",
            CRITICAL,
            gxe.ExpectColumnValuesToBeInSet,
            column="file_exists",
            value_set=[True],
        ),
        check(
            "image_decodes",
            CRITICAL,
            gxe.ExpectColumnValuesToBeInSet,
            column="decode_ok",
            value_set=[True],
        ),
        check(
            "image_bytes_match_manifest",
            CRITICAL,
            gxe.ExpectColumnPairValuesToBeEqual,
            column_A="sha256",
            column_B="sha256_actual",
            ignore_row_if="either_value_is_missing",
        ),
    ]


def _image_content_checks(p: ValidateParams) -> list[Check]:
    """Mode, size, content and split membership of each image."""
    side = {"min_value": p.image_side.min, "max_value": p.image_side.max}
    return [
        check(
            "image_is_rgb",
            WARNING,
            gxe.ExpectColumnValuesToBeInSet,
            column="mode",
            value_set=["RGB"],
        ),
        check(
            "image_width_within_bounds",
            CRITICAL,
            gxe.ExpectColumnValuesToBeBetween,
            column="actual_width",
            **side,
        ),
        check(
            "image_height_within_bounds",
            CRITICAL,
            gxe.ExpectColumnValuesToBeBetween,
            column="actual_height",
            **side,
        ),
        check(
            "image_not_blank",
            CRITICAL,
            gxe.ExpectColumnValuesToBeBetween,
            column="pixel_std",
            min_value=p.blank_std,
        ),
        check(
            "image_in_one_split",
            CRITICAL,
            gxe.ExpectColumnValuesToBeInSet,
            column="in_several_splits",
            value_set=[False],
        ),
        check(
            "captions_per_image_within_bounds",
            CRITICAL,
            gxe.ExpectColumnValuesToBeBetween,
            column="n_captions",
            min_value=p.captions_per_image.min,
            max_value=p.captions_per_image.max,
        ),
    ]


def split_checks(p: ValidateParams) -> list[Check]:
    return [
        check(
            "oov_rate_within_bound",
            CRITICAL,
            gxe.ExpectColumnValuesToBeBetween,
            column="oov_rate",
            max_value=p.max_oov_rate,
        ),
        check(
            "shared_caption_rate_within_bound",
            WARNING,
            gxe.ExpectColumnValuesToBeBetween,
            column="shared_with_train_rate",
            max_value=p.max_cross_split_caption_rate,
        ),
    ]


SUITES: dict[str, SuiteBuilder] = {
    "captions": caption_checks,
    "images": image_checks,
    "splits": split_checks,
}
