"""Upload the compiled DOVE pipeline to Kubeflow Pipelines and schedule its retraining.

    python -m infra.kfp.upload --host https://kfp.example.org/pipeline \\
        --cron "0 0 3 * * 1"          # KFP cron has seconds: Mondays 03:00

Steps: read ``params.yaml`` (pipeline name, compiled file), add the Kubernetes platform
config (GPU toleration for train, endpoints/S3/DVC for every task; see platform.py), upload
it as a new version of the pipeline (created on first use), make sure the experiment exists,
and replace the recurring run of the same name. ``--dry-run`` writes the package and prints
the plan without contacting a server. Auth: kfp.Client reads the usual KF_PIPELINES_* env or
pass ``--namespace`` for a multi-user install.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dove_model.config import load_params
from dove_model.errors import DoveError
from dove_model.pipeline.platform import build_package

DEFAULT_CRON = "0 0 3 * * 1"  # second minute hour day-of-month month day-of-week
PACKAGE_OUT = Path("artifacts/kfp/pipeline-cluster.yaml")


@dataclass(frozen=True)
class Schedule:
    experiment: str
    job_name: str
    cron: str
    data_version: str
    params_text: str
    enable_caching: bool
    max_concurrency: int = 1


def check_cron(expression: str) -> str:
    """KFP schedules take six fields (seconds first); a five-field crontab is a common slip."""
    fields = expression.split()
    if len(fields) != 6:
        raise DoveError(
            f"--cron {expression!r}: KFP needs 6 fields (second minute hour day month weekday),"
            f" got {len(fields)}"
        )
    from croniter import croniter

    if not croniter.is_valid(" ".join(fields[1:])) or not re.fullmatch(r"[\d*/,-]+", fields[0]):
        raise DoveError(f"--cron {expression!r}: not a valid cron expression")
    return expression


def version_name(package: Path) -> str:
    digest = hashlib.sha256(package.read_bytes()).hexdigest()[:12]
    return f"sha-{digest}"


def upload_and_schedule(
    client: Any, pipeline_name: str, package: Path, schedule: Schedule
) -> dict[str, str]:
    """Idempotent: re-running with the same package reuses its version and the schedule."""
    pipeline_id = client.get_pipeline_id(pipeline_name)
    version = version_name(package)
    if pipeline_id is None:
        pipeline = client.upload_pipeline(str(package), pipeline_name=pipeline_name)
        pipeline_id = pipeline.pipeline_id
        version_id = client.list_pipeline_versions(pipeline_id).pipeline_versions[0]
        version_id = version_id.pipeline_version_id
    else:
        existing = client.list_pipeline_versions(pipeline_id, page_size=100).pipeline_versions
        match = [v for v in existing or [] if v.display_name == version]
        version_id = (
            match[0].pipeline_version_id
            if match
            else client.upload_pipeline_version(
                str(package), pipeline_version_name=version, pipeline_id=pipeline_id
            ).pipeline_version_id
        )
    experiment = client.create_experiment(schedule.experiment)
    old = client.list_recurring_runs(experiment_id=experiment.experiment_id, page_size=100)
    for job in old.recurring_runs or []:
        if job.display_name == schedule.job_name:
            client.delete_recurring_run(job.recurring_run_id)
    job = client.create_recurring_run(
        experiment_id=experiment.experiment_id,
        job_name=schedule.job_name,
        cron_expression=schedule.cron,
        max_concurrency=schedule.max_concurrency,
        no_catchup=True,
        params={"data_version": schedule.data_version, "params_yaml": schedule.params_text},
        pipeline_id=pipeline_id,
        version_id=version_id,
        enable_caching=schedule.enable_caching,
    )
    return {"pipeline_id": pipeline_id, "version_id": version_id, "job": job.recurring_run_id}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", help="KFP API endpoint (required unless --dry-run)")
    parser.add_argument("--namespace", help="user namespace of a multi-user KFP")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--root", type=Path, default=Path("."), help="repository root")
    parser.add_argument("--cron", default=DEFAULT_CRON, help="six-field KFP cron")
    parser.add_argument("--experiment", default="dove-retraining")
    parser.add_argument("--data-version", help="default: the current DVC data version")
    parser.add_argument("--cache", action="store_true", help="let KFP reuse cached steps")
    parser.add_argument("--out", type=Path, default=PACKAGE_OUT, help="patched package path")
    parser.add_argument("--dry-run", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        params = load_params(args.root / args.params)
        cron = check_cron(args.cron)
        package = build_package(params, args.root, args.root / args.out)
        if args.data_version:
            data_version = args.data_version
        else:
            from dove_model.pipeline.run import pipeline_data_version

            data_version = pipeline_data_version(params, args.root)
        schedule = Schedule(
            experiment=args.experiment,
            job_name=f"{params.pipeline.name}-scheduled",
            cron=cron,
            data_version=data_version,
            params_text=(args.root / args.params).read_text(encoding="utf-8"),
            enable_caching=args.cache,
        )
        print(f"package  {package} (version {version_name(package)})")
        print(f"schedule {schedule.job_name}: '{cron}' in experiment {schedule.experiment}")
        if args.dry_run:
            return 0
        if not args.host:
            raise DoveError("--host is required (or pass --dry-run)")
        import kfp

        client = kfp.Client(host=args.host, namespace=args.namespace)
        ids = upload_and_schedule(client, params.pipeline.name, package, schedule)
    except DoveError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(" ".join(f"{key}={value}" for key, value in ids.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
