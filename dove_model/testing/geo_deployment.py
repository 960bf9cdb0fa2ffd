"""A deployed archive of two georeferenced scenes (issue 28), for the service and page tests:
scene A at 9.0 E 48.0 N taken in May 2024, scene B at 11.0 E 47.0 N in July 2024, cut into
32 px chips by the real ``dove archive ingest`` CLI and indexed with a tiny untrained model."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from dove_model.testing.deployment import SCENES, DemoDeployment, deploy_model, tiny_model_dir
from dove_model.testing.geo_scenes import rgb_scene

DOVE = str(Path(sys.executable).with_name("dove"))
REPO = Path(__file__).resolve().parents[2]
NEAR_A = [8.99, 47.99, 9.02, 48.01]  # around scene A (its top-left corner is at 9.0E 48.0N)
MAY, JULY = datetime(2024, 5, 1, 10, 30, tzinfo=UTC), datetime(2024, 7, 1, 10, 30, tzinfo=UTC)


def ingest_cli(scenes: Path, out: Path, chip_size: int = 32) -> Path:
    """``dove archive ingest`` (the CLI, one worker) of ``scenes`` into ``out``."""
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    args = ["archive", "ingest", str(scenes), "--out", str(out), "--chip-size", str(chip_size)]
    result = subprocess.run(
        [DOVE, *args, "--workers", "1"], env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise AssertionError(f"dove archive ingest failed:\n{result.stderr}")
    return out


def two_scenes(folder: Path) -> Path:
    """Scenes A (May) and B (July), 128 px at 1 m, as COGs in ``folder``."""
    rgb_scene(folder / "a.tif", 128, lon=9.0, lat=48.0, seed=1, when=MAY)
    rgb_scene(folder / "b.tif", 128, lon=11.0, lat=47.0, seed=2, when=JULY)
    return folder


def deploy_two_scenes(root: Path) -> DemoDeployment:
    """The two scenes ingested, a tiny model, both deployed under ``root``."""
    chips = ingest_cli(two_scenes(root / "scenes"), root / "chips")
    captions = [c for _, c in SCENES.values()]
    model = tiny_model_dir(root / "model", [*captions, *(f"there is {c}" for c in captions)])
    return deploy_model(root, chips, model)


def set_archive(project: Path, **archive: object) -> None:
    """Update the ``archive`` section of ``project/params.yaml`` with ``archive``."""
    import yaml

    raw = yaml.safe_load((project / "params.yaml").read_text())
    raw["archive"] |= archive
    (project / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
