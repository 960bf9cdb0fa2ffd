"""Run the suites with Great Expectations 1.x and turn its results into plain outcomes.

An ephemeral GE context (nothing written outside the report folder): one pandas data source,
one dataframe asset + batch definition + suite + validation definition + checkpoint per
suite; the checkpoints store their results, then the Data Docs HTML site is built once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:  # importing great_expectations takes seconds: only when a gate runs
    from dove_model.quality.suites import Check

MAX_OFFENDERS = 50  # rows named per check in the summary (the count is always complete)
DOCS_SITE = "dove"


@dataclass(frozen=True)
class CheckOutcome:
    suite: str
    name: str
    severity: str
    expectation: str
    success: bool
    element_count: int
    unexpected_count: int
    offenders: list[str] = field(default_factory=list)
    observed: Any = None

    @property
    def failed_critical(self) -> bool:
        return not self.success and self.severity == "critical"


def plain_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Nullable pandas dtypes -> numpy/object columns with None/NaN, which GE handles."""
    out = {}
    for name, column in frame.items():
        if isinstance(column.dtype, pd.BooleanDtype | pd.StringDtype):
            out[name] = column.astype(object).where(column.notna(), None)
        elif isinstance(column.dtype, pd.Int64Dtype | pd.Float64Dtype):
            out[name] = column.astype("float64")
        else:
            out[name] = column
    return pd.DataFrame(out, index=frame.index)


def _context(docs_dir: Path | None) -> Any:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    if docs_dir is not None:
        site = {
            "class_name": "SiteBuilder",
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(docs_dir.resolve()),
            },
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        }
        context.add_data_docs_site(DOCS_SITE, site)
    return context


def _outcome(suite: str, check: Check, result: Any) -> CheckOutcome:
    details = result.result or {}
    index_rows = details.get("unexpected_index_list") or []
    offenders = [str(row.get("ref")) for row in index_rows[:MAX_OFFENDERS] if isinstance(row, dict)]
    unexpected = details.get("unexpected_count")
    if unexpected is None:  # aggregate-style results
        unexpected = 0 if result.success else len(index_rows)
    return CheckOutcome(
        suite=suite,
        name=check.name,
        severity=check.severity,
        expectation=result.expectation_config.type,
        success=bool(result.success),
        element_count=int(details.get("element_count") or 0),
        unexpected_count=int(unexpected),
        offenders=offenders,
        observed=details.get("observed_value"),
    )


def run_suites(
    tables: dict[str, pd.DataFrame],
    suites: dict[str, list[Check]],
    docs_dir: Path | None = None,
) -> list[CheckOutcome]:
    """Validate ``tables[name]`` against ``suites[name]``; render Data Docs into ``docs_dir``."""
    import great_expectations as gx

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    context = _context(docs_dir)
    source = context.data_sources.add_pandas("dove")
    outcomes: list[CheckOutcome] = []
    for name, checks in suites.items():
        batch = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("all")
        suite = context.suites.add(gx.ExpectationSuite(name=name))
        for check in checks:
            suite.add_expectation(check.build())
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=name, data=batch, suite=suite)
        )
        checkpoint = context.checkpoints.add(
            gx.Checkpoint(
                name=f"dove-{name}",
                validation_definitions=[definition],
                actions=[],
                result_format={
                    "result_format": "COMPLETE",
                    "unexpected_index_column_names": ["ref"],
                    "return_unexpected_index_query": False,
                },
            )
        )
        run = checkpoint.run(batch_parameters={"dataframe": plain_frame(tables[name])})
        (suite_result,) = run.run_results.values()
        by_name = {c.name: c for c in checks}
        for result in suite_result.results:
            check = by_name[result.expectation_config.meta["check"]]
            outcomes.append(_outcome(name, check, result))
    if docs_dir is not None:  # once for all suites: rendering dominates GE's own run time
        context.build_data_docs(site_names=[DOCS_SITE])
    return outcomes
