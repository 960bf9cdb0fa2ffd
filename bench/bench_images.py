"""Cold and warm build times and sizes of both images (`dove images build`), and the
containerized pipeline against the SubprocessRunner on the same smoke parameters.

  python bench/bench_images.py                 # cold (the project's images removed first), warm
  python bench/bench_images.py --skip-cold     # warm only (keeps the store)
  python bench/bench_images.py --pipeline      # + `dove pipeline run --local` in both runners

Cold means no project image and no layer in the engine's store and the Debian root made
again; the engine's download cache (uv's cache mount) is kept: delete it by hand for a build
that downloads every wheel. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dove_model.config import load_params  # noqa: E402
from dove_model.testing.deployment import deploy_synthetic  # noqa: E402
from dove_model.testing.smoke import write_smoke_project  # noqa: E402
from infra.images.build import (  # noqa: E402
    BUILD_BASE,
    LOCAL_DEBIAN,
    PYTHON_BASE,
    BuiltImage,
    ImageSettings,
    build_images,
    git_revision,
)
from infra.images.engine import find_engine  # noqa: E402

SERVING_TAG = "localhost/dove-ops/dove-retrieval:bench"


def build_round(label: str, settings: ImageSettings, bentoml_home: Path) -> list[BuiltImage]:
    engine = find_engine()
    built: list[BuiltImage] = []
    os.environ["BENTOML_HOME"] = str(bentoml_home)
    start = time.perf_counter()
    build_images(engine, settings, ["pipeline", "serving"], built.append)
    total = time.perf_counter() - start
    print(f"\n{label}: {total:.1f} s in all ({engine.name})")
    for image in built:
        size = f"{image.size_bytes / 2**30:.2f} GiB" if image.size_bytes else "?"
        how = "reused" if image.reused else f"{image.seconds:7.1f} s"
        print(f"  {image.step:9} {how:>10}  {size:>10}  {image.tag}")
    return built


def remove_project_images(settings: ImageSettings) -> None:
    engine = find_engine()
    tags = [LOCAL_DEBIAN, PYTHON_BASE, BUILD_BASE, settings.pipeline_tag, settings.serving_tag]
    engine.run("rmi", "--force", *tags, check=False)
    engine.run("image", "prune", "--all", "--force", check=False)


def pipeline_runs(work: Path) -> None:
    for runner in ("subprocess", "docker"):
        root = work / runner
        root.mkdir()
        write_smoke_project(root)
        env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
        env["BENTOML_HOME"] = str(root / "bentoml_home")
        start = time.perf_counter()
        done = subprocess.run(
            [str(Path(sys.executable).with_name("dove")), "pipeline", "run", "--local",
             "--runner", runner, "--data-version", "bench"],
            cwd=root, env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        seconds = time.perf_counter() - start
        state = "ok" if done.returncode == 0 else f"FAILED ({done.stderr[-300:]})"
        print(f"  pipeline --runner {runner:10} {seconds:7.1f} s  {state}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-cold", action="store_true")
    parser.add_argument("--pipeline", action="store_true")
    args = parser.parse_args()
    params = load_params(REPO / "params.yaml")
    with tempfile.TemporaryDirectory(prefix="dove-bench-images-") as tmp:
        deployment = deploy_synthetic(Path(tmp) / "deployment")
        settings = ImageSettings(
            pipeline_tag=params.pipeline.image,
            serving_tag=SERVING_TAG,
            revision=git_revision(REPO),
        )
        if not args.skip_cold:
            remove_project_images(settings)
            cold = ImageSettings(**{**settings.__dict__, "rebuild": True})
            build_round("cold", cold, deployment.bentoml_home)
        build_round("warm (nothing changed)", settings, deployment.bentoml_home)
        if args.pipeline:
            print("\nthe smoke pipeline, KFP's local runners:")
            pipeline_runs(Path(tmp))


if __name__ == "__main__":
    main()
