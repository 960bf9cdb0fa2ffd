"""``make demo``: from a fresh clone to a gated champion and a running search service.

Makes sure ``data/`` exists (DVC pull, else the deterministic synthetic render), runs
``dvc repro`` (prepare -> validate -> train -> evaluate -> register -> deploy) on the
synthetic default, prints where to look (MLflow UI, model URI, metrics), then starts the
BentoML service with an example query. ``--no-serve`` stops after the pipeline.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from dove_model.config import Params, load_params
from dove_model.errors import DoveError

EXAMPLE_QUERY = "a blue river crosses the green fields"
REGISTRATION_FILE = Path("reports/registration.json")


def _dvc() -> str:
    found = shutil.which("dvc") or str(Path(sys.executable).with_name("dvc"))
    if not Path(found).exists():
        raise DoveError("dvc not found in the environment (run `make setup`)")
    return found


def ensure_data(params: Params, root: Path) -> None:
    """A fresh clone has data.dvc but no data/: pull it, or re-render the synthetic default
    (deterministic, so it matches the committed md5)."""
    from dove_model.data.default import ensure_default_data

    ensure_default_data(params, root)


def run_dvc_pipeline(root: Path) -> None:
    """``dvc repro`` with its own progress output; a failed stage is a DoveError."""
    if not (root / ".dvc").is_dir() or not (root / "dvc.yaml").is_file():
        raise DoveError(f"{root}: not a DVC project (expected .dvc/ and dvc.yaml)")
    done = subprocess.run([_dvc(), "repro"], cwd=root, check=False)
    if done.returncode != 0:
        raise DoveError(f"{root / 'dvc.yaml'}: `dvc repro` failed (exit {done.returncode})")


def print_where_to_look(params: Params, root: Path) -> None:
    from dove_model.registry import alias_state, champion_uri
    from dove_model.registry.tracking import resolve_tracking_uri

    registration = json.loads((root / REGISTRATION_FILE).read_text(encoding="utf-8"))
    metrics = json.loads((root / params.evaluate.out_file).read_text(encoding="utf-8"))
    aliases = alias_state(params, root=root)
    uri = resolve_tracking_uri(params.register_, root)
    print("\n=== DOVE-Ops demo: pipeline done ===")
    print(f"registered   {registration['model_uri']}  ({registration['gate']})")
    print(f"champion     {champion_uri(params)} -> v{aliases['champion']}")
    recalls = ", ".join(
        f"{k}={metrics[k]:.1f}" for k in ("i2t_r1", "i2t_r10", "t2i_r1", "t2i_r10", "mR")
    )
    print(f"test metrics {recalls}  (random chance mR {metrics.get('random_chance_mR', 0):.1f})")
    print(f"metrics      {root / params.evaluate.out_file}; `dvc metrics show`, `dvc plots show`")
    print(f"MLflow UI    {Path(sys.executable).with_name('mlflow')} ui --backend-store-uri {uri}")
    if aliases["champion"] is None:
        raise DoveError("no champion: the recall gates failed (see the line above)")


def serve(params: Params, root: Path, started: float) -> None:
    from dove_model.serving.launch import serve_forever, serving_env

    env = serving_env(
        params_file=(root / "params.yaml").resolve(),
        index_dir=(root / params.index.out_dir).resolve(),
    )
    print(f"pipeline finished in {time.monotonic() - started:.0f} s; starting the service")
    serve_forever(env, host=params.serve.host, port=params.serve.port, example=EXAMPLE_QUERY)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dove_model.demo", description=__doc__)
    parser.add_argument("--no-serve", action="store_true", help="stop after the pipeline")
    args = parser.parse_args(argv)
    started = time.monotonic()
    root = Path.cwd()
    try:
        params = load_params(root / "params.yaml")
        ensure_data(params, root)
        run_dvc_pipeline(root)
        print_where_to_look(params, root)
        if args.no_serve:
            print(f"demo pipeline finished in {time.monotonic() - started:.0f} s")
        else:
            serve(params, root, started)
    except DoveError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
