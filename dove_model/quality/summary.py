"""A one-screen rich summary of a validation run (the CLI and ``make demo`` print it)."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table

from dove_model.quality.validate import ValidationResult, describe

_STATUS = {"pass": "[green]pass[/]", "critical": "[red]FAIL[/]", "warning": "[yellow]warn[/]"}


def summary_table(result: ValidationResult, gate: str = "data gate") -> Table:
    counts = result.counts
    per_split = counts.get("images_per_split") or {"chips": counts.get("chips")}
    splits = ", ".join(f"{k} {v}" for k, v in per_split.items())
    verdict = "[green]PASSED[/]" if result.passed else "[red]FAILED[/]"
    title = f"{gate} {verdict}: {counts['images']} images ({splits}), {counts['captions']} captions"
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("suite", no_wrap=True)
    table.add_column("expectation", no_wrap=True)
    table.add_column("severity", no_wrap=True)
    table.add_column("result", no_wrap=True)
    table.add_column("failing rows", no_wrap=True, justify="right")
    for check in result.checks:
        status = _STATUS["pass" if check.success else check.severity]
        failing = f"{check.unexpected_count} / {check.element_count}"
        table.add_row(check.suite, check.name, check.severity, status, failing)
    return table


def print_summary(
    result: ValidationResult, console: Console | None = None, gate: str = "data gate"
) -> None:
    """The table, then one line per failed check naming its first offending rows."""
    console = console or Console()
    console.print(summary_table(result, gate))
    for check in [*result.critical_failures, *result.warnings]:
        colour = "red" if check.severity == "critical" else "yellow"
        console.print(f"[{colour}]{describe(check)}[/]", overflow="ellipsis", no_wrap=True)
    console.print(
        f"report {result.summary_file}, data docs {result.data_docs_index} "
        f"({result.seconds['total']:.1f} s)",
        overflow="fold",
    )
