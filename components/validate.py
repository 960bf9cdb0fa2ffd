"""validate: Great Expectations suites; a critical failure fails the task (and the run)."""

from kfp.dsl import HTML, Artifact, Dataset, Input, Output


def validate(
    params_yaml: str,
    dataset: Input[Dataset],
    report: Output[HTML],
    report_dir: Output[Artifact],
) -> None:
    from dove_model.pipeline.steps import validate_step

    validate_step(params_yaml, dataset.path, report.path, report_dir.path)
