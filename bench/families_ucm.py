"""Both model families through the pipeline's stages on real UCM images: who becomes champion.

The same prepared UCM-Captions dataset (one data version: 10 % of the train images carved out
as ``val`` for epoch selection, the 210-image ``test`` split reported), the stage functions in
the pipeline's order (train -> evaluate -> register with the recall gates of params.yaml),
one fresh sqlite MLflow registry: DOVE (``real-cpu``) registers first, then the dual family
(``dual-cpu``); the gate promotes the challenger only if it does not regress against the
champion, whatever its family.

    python bench/families_ucm.py [--out /tmp/dove-families-ucm] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch
from ucm_ablation import UCM, prepared_ucm

from dove_model.config import Params, load_params, parse_params
from dove_model.evaluation.evaluate import evaluate
from dove_model.families.dispatch import train
from dove_model.registry import alias_state, detect_data_version, register
from dove_model.registry.promotion import alias_families

REPO = Path(__file__).resolve().parents[1]
PROFILES = {"dove": "real-cpu", "dual": "dual-cpu"}


def family_params(base: Params, profile: str, out: Path) -> Params:
    raw = base.model_dump(mode="json", by_alias=True)
    raw["train"] |= {
        "profile": profile,
        "val_split": "val",
        "seed": 0,
        "out_dir": str(out / profile),
        "cache_dir": str(out / "cache"),
    }
    return parse_params(raw, source=f"families_ucm {profile}")


def start_fresh(out: Path) -> None:
    """An empty registry and untrained runs (a run left from before would resume, and its
    versions would compete); the prepared data and the tower feature caches are kept."""
    for stale in ("mlruns", *PROFILES.values()):
        shutil.rmtree(out / stale, ignore_errors=True)


def run_family(dataset: Path, params: Params, out: Path) -> dict:
    started = time.perf_counter()
    result = train(dataset, params, Path(params.train.out_dir))
    trained_s = time.perf_counter() - started
    metrics_file = out / f"metrics-{params.train.profile}.json"
    metrics = evaluate(result.model_dir, dataset, params, metrics_file, split="test")
    registration = register(
        result.model_dir,
        metrics_file,
        params,
        detect_data_version(dataset, root=out),
        dataset_dir=dataset,
        root=out,
    )
    return {
        "profile": params.train.profile,
        "best_epoch": result.best_epoch,
        "val_mR": result.best_metrics.get("mR"),
        "test": {
            k: metrics[k]
            for k in ("i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10", "mR")
        },
        "test_mR_ties_averaged": metrics["tie_averaged"]["mR"],
        "version": registration.version,
        "promoted": registration.promoted,
        "gate": registration.gate,
        "seconds": round(time.perf_counter() - started, 1),
        "train_seconds": round(trained_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=UCM)
    parser.add_argument("--out", type=Path, default=Path("/tmp/dove-families-ucm"))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    start_fresh(args.out)
    dataset = prepared_ucm(args.out, args.data, carve_val=True)
    base = load_params(REPO / "params.yaml")
    rows = {}
    for family, profile in PROFILES.items():
        rows[family] = run_family(dataset, family_params(base, profile, args.out), args.out)
        print(json.dumps({family: rows[family]}, indent=2))
    champion = alias_state(base, root=args.out)["champion"]
    families = alias_families(base, root=args.out)
    print(f"\nchampion: v{champion} ({families['champion']})")
    print("| family (profile) | val mR | test i2t R@1/5/10 | t2i R@1/5/10 | test mR | registered |")
    print("|---|---|---|---|---|---|")
    for family, row in rows.items():
        t = row["test"]
        print(
            f"| {family} ({row['profile']}) | {row['val_mR']:.1f} | "
            f"{t['i2t_r1']:.1f}/{t['i2t_r5']:.1f}/{t['i2t_r10']:.1f} | "
            f"{t['t2i_r1']:.1f}/{t['t2i_r5']:.1f}/{t['t2i_r10']:.1f} | {t['mR']:.2f} | "
            f"v{row['version']} {'champion' if row['promoted'] else 'challenger'} |"
        )
    (args.out / "families.json").write_text(
        json.dumps({"runs": rows, "champion": champion, "family": families["champion"]}, indent=2)
    )


if __name__ == "__main__":
    main()
