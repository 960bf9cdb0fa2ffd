"""What makes an ingest resumable: the recorded settings and per-task / per-scene records.

``DIR/ingest.json`` records the chip settings; a later run into DIR must use the same ones.
A worker task writes its chips' records to ``DIR/.ingest/parts/<scene>/<start>-<stop>.parquet``
after its chips; when every task of a scene is done its parts become
``DIR/.ingest/scenes/<scene>.parquet``, the scene's done marker. A re-run skips scenes with a
done marker and tasks with a part file; chips of an interrupted task are found by their
content address and not written again. Every file here is written atomically.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from dove_model.atomic import atomic_path, write_text
from dove_model.data.manifest import IMAGES_DIR
from dove_model.errors import ConfigError
from dove_model.geo.settings import IngestParams

SETTINGS_FILE = "ingest.json"
STATE_DIR = ".ingest"
FORMAT_VERSION = 1


def scene_file(out_dir: Path, scene_key: str) -> Path:
    return out_dir / STATE_DIR / "scenes" / f"{scene_key}.parquet"


def part_file(out_dir: Path, scene_key: str, start: int, stop: int) -> Path:
    return out_dir / STATE_DIR / "parts" / scene_key / f"{start:07d}-{stop:07d}.parquet"


def scene_done(out_dir: Path, scene_key: str) -> bool:
    return scene_file(out_dir, scene_key).is_file()


def _recorded(out_dir: Path) -> dict[str, Any] | None:
    path = out_dir / SETTINGS_FILE
    if not path.is_file():
        return None
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: unreadable ingest settings ({exc})") from None


def check_output(out_dir: Path, params: IngestParams) -> None:
    """Refuse an existing ``out_dir`` that is not an ingest of the same chip settings."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise ConfigError(f"{out_dir}: exists and is not a folder")
    recorded = _recorded(out_dir)
    if recorded is None:
        if any(out_dir.iterdir()):
            raise ConfigError(f"{out_dir}: not empty and not an archive ingest folder")
        return
    settings = params.chip_settings()
    before = recorded.get("settings", {})
    changed = sorted(k for k in settings.keys() | before.keys() if settings.get(k) != before.get(k))
    if changed:
        shown = ", ".join(f"{k} {before.get(k)!r} -> {settings.get(k)!r}" for k in changed)
        raise ConfigError(f"{out_dir}: ingested with other settings ({shown}): use another --out")


TEMP_PATTERNS = (".*.tmp", f"{STATE_DIR}/**/.*.tmp", f"{IMAGES_DIR}/*/.*.tmp")


def open_output(out_dir: Path, params: IngestParams, source: str) -> None:
    """Create ``out_dir`` and record its settings (once); drop the temporary files a killed
    run left (they never got a final name)."""
    (out_dir / STATE_DIR).mkdir(parents=True, exist_ok=True)
    for pattern in TEMP_PATTERNS:
        for leftover in out_dir.glob(pattern):
            leftover.unlink(missing_ok=True)
    if _recorded(out_dir) is None:
        record = {
            "format_version": FORMAT_VERSION,
            "source": source,
            "settings": params.chip_settings(),
        }
        write_text(out_dir / SETTINGS_FILE, json.dumps(record, indent=2) + "\n")


def write_records(path: Path, records: Sequence[dict[str, Any]]) -> None:
    with atomic_path(path, suffix=".parquet") as tmp:
        pd.DataFrame(list(records)).to_parquet(tmp, index=False)


def read_records(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path)


def finish_scene(out_dir: Path, scene_key: str, ranges: Sequence[tuple[int, int]]) -> None:
    """Join the scene's task records (in chip order) into its done marker; drop the parts."""
    frames = [read_records(part_file(out_dir, scene_key, a, b)) for a, b in ranges]
    frames = [f for f in frames if not f.empty]
    joined = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    with atomic_path(scene_file(out_dir, scene_key), suffix=".parquet") as tmp:
        joined.to_parquet(tmp, index=False)
    shutil.rmtree(out_dir / STATE_DIR / "parts" / scene_key, ignore_errors=True)
