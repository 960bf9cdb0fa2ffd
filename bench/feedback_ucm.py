"""A simulated feedback round on UCM-Captions: mR before and after one retraining, and mR
against the amount of feedback (issue 29). Prints and plots, never asserts.

    .venv/bin/python bench/feedback_ucm.py --levels 0 1 2 5 --epochs 4

Protocol. UCM is imported once (train 1,512 / val 168 carved from train / test 210 images).
One caption of every train image is held back: the base model trains on the other four.
The held-back captions are the users' queries. For ``p`` % of the archive's 2,100 images, a
query (a held-back caption, sampled in a fixed order: levels are nested) is searched with the
base model (global embeddings, top 10 of the whole archive); the simulated user marks its
ground-truth image relevant when it is among the 10 shown, and the best-ranked wrong image
not relevant. Those searches and marks go through the real code path: the query log
(FileStore), ``collect_pairs`` (roles, leak check), the GE feedback suite and the data gate
(``gate_pairs``; reported, with ``min_pairs`` lowered to 5 for the small levels), and
``add_feedback`` into the manifest; then one retraining from scratch with the same seed and
epochs, evaluated on ``test`` (never marked: only train images can become training pairs).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from ucm_ablation import REPO, UCM, prepared_ucm, run_one, run_params

from dove_model.config import load_params
from dove_model.data.feedback_rows import PAIRS_FILE, add_feedback
from dove_model.data.manifest import read_manifest, write_manifest
from dove_model.feedback.export import collect_pairs, gate_pairs
from dove_model.feedback.files import FileStore
from dove_model.feedback.records import FeedbackRecord, QueryRecord
from dove_model.loop_params import QueryLogParams

K = 10


def base_dataset(prepared: Path, out: Path) -> tuple[Path, pd.DataFrame]:
    """The prepared UCM minus one caption per train image (those are returned: the queries)."""
    frame = read_manifest(prepared)
    train = frame[frame["split"] == "train"]
    held = train.loc[train.groupby("image_id")["caption_id"].idxmax()]
    folder = out / "base"
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "images").exists():
        os.symlink((prepared / "images").resolve(), folder / "images")
    write_manifest(frame.drop(index=held.index), folder)
    return folder, held.reset_index(drop=True)


def copy_dataset(base: Path, target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    if not (target / "images").exists():
        os.symlink((base / "images").resolve(), target / "images")
    write_manifest(read_manifest(base), target)
    return target


def archive_embeddings(model_dir: Path, dataset: Path) -> tuple[list[str], np.ndarray, object]:
    from PIL import Image

    from dove_model.families.dispatch import load_encoder

    encoder = load_encoder(model_dir)
    images = read_manifest(dataset).drop_duplicates("image_id")
    pictures = []
    for rel in images["image_path"]:
        with Image.open(dataset / str(rel)) as img:
            pictures.append(img.convert("RGB"))
    v = np.asarray(encoder.encode_images(pictures).v_m, np.float64)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return images["image_id"].astype(str).tolist(), v, encoder


def simulate_log(
    store: FileStore, queries: pd.DataFrame, ids: list[str], v: np.ndarray, encoder
) -> dict[str, int]:
    t = np.asarray(encoder.encode_texts(list(queries["caption"])).t_g, np.float64)
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    top = np.argsort(-(t @ v.T), axis=1)[:, :K]
    found = 0
    for n, (row, ranked) in enumerate(zip(queries.itertuples(), top, strict=True)):
        shown = [ids[j] for j in ranked]
        client = f"user{n % 10}"
        search = QueryRecord.of_search(str(row.caption), K, [(i, 0.0) for i in shown],
                                       ("base", None), 1.0, "text", client)  # fmt: skip
        marks = []
        if row.image_id in shown:
            found += 1
            marks.append(FeedbackRecord(search.query_id, str(row.image_id), True,
                                        shown.index(row.image_id) + 1, client=client))  # fmt: skip
        wrong = next(i for i in shown if i != row.image_id)
        marks.append(FeedbackRecord(search.query_id, wrong, False, shown.index(wrong) + 1,
                                    client=client))  # fmt: skip
        store.write([search, *marks])
    return {"queries": len(queries), "ground_truth_in_top10": found}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", type=float, nargs="+", default=[0, 1, 2, 5])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", default="real-cpu")
    parser.add_argument("--rotations", type=int, default=1, help="model.tta_rotations")
    parser.add_argument(
        "--no-roam", action="store_true", help="the VSE ablation (global embeddings only): fast"
    )
    parser.add_argument("--out", type=Path, default=REPO / "artifacts" / "bench" / "feedback_ucm")
    parser.add_argument("--plot", type=Path, default=REPO / "docs" / "img" / "feedback_ucm.png")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if not (UCM / "dataset.json").is_file():
        raise SystemExit(f"UCM-Captions not found at {UCM} (../shared is absent)")
    torch.set_num_threads(args.threads)
    base_params = load_params(REPO / "params.yaml")
    variant: dict[str, object] = {"tta_rotations": args.rotations}
    if args.no_roam:
        variant["use_roam"] = False
    params = run_params(base_params, args.profile, variant, args.seed, args.epochs, "val", args.out)
    raw = params.model_dump(mode="json", by_alias=True)
    raw["feedback"]["export"]["expectations"]["min_pairs"] = 5
    params = type(params).model_validate(raw)
    prepared = prepared_ucm(args.out, UCM, carve_val=True)
    base, held = base_dataset(prepared, args.out)
    n_archive = read_manifest(prepared)["image_id"].nunique()
    order = held.sample(frac=1.0, random_state=args.seed).reset_index(drop=True)
    rows = []
    start = time.monotonic()
    base_row = run_one(base, params, args.out / "run-0")
    rows.append({"percent": 0.0, "marked_images": 0, "train_pairs": 0, **base_row})
    report(rows, args, time.monotonic() - start)
    print(f"0 % feedback: test mR {base_row['mR']:.2f} ({base_row['seconds']:.0f} s)", flush=True)
    ids, v, encoder = archive_embeddings(args.out / "run-0" / "model", prepared)
    for percent in [p for p in args.levels if p > 0]:
        n = round(n_archive * percent / 100)
        store = FileStore(args.out / f"log-{percent:g}", QueryLogParams())
        sim = simulate_log(store, order.head(n), ids, v, encoder)
        manifest = read_manifest(base)
        pairs, counts = collect_pairs(store.queries(), store.feedback(), manifest)
        checks = gate_pairs(pairs, manifest, params)
        failed = [c.name for c in checks if not c.success]
        pairs_dir = args.out / f"feedback-{percent:g}"
        pairs_dir.mkdir(parents=True, exist_ok=True)
        pairs.to_parquet(pairs_dir / PAIRS_FILE, index=False)
        dataset = copy_dataset(base, args.out / f"data-{percent:g}")
        added = add_feedback(dataset, pairs_dir)
        row = run_one(dataset, params, args.out / f"run-{percent:g}")
        rows.append({"percent": percent, "marked_images": n, "train_pairs": added, **sim,
                     **counts, "failed_expectations": failed, **row})  # fmt: skip
        print(f"{percent:g} % ({n} queries, {sim['ground_truth_in_top10']} found, {added} pairs "
              f"trained, failed: {failed}): test mR {row['mR']:.2f} ({row['seconds']:.0f} s)",
              flush=True)  # fmt: skip
        report(rows, args, time.monotonic() - start)  # after each level: partial results kept


def report(rows: list[dict], args: argparse.Namespace, seconds: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(rows, key=lambda r: r["percent"])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "feedback_ucm.json").write_text(json.dumps(rows, indent=2, default=str))
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.plot([r["percent"] for r in rows], [r["mR"] for r in rows], marker="o")
    for r in rows:
        ax.annotate(f"{r['mR']:.1f} ({r['train_pairs']} pairs)", (r["percent"], r["mR"]),
                    fontsize=8, xytext=(4, 4), textcoords="offset points")  # fmt: skip
    ax.set_xlabel("share of the archive marked by simulated users (%)")
    ax.set_ylabel("UCM test mR")
    model = "DOVE w/o ROAM" if args.no_roam else "DOVE"
    title = f"One retraining on feedback: {model}, {args.profile}, {args.epochs} epochs"
    ax.set_title(f"{title}, seed {args.seed}", fontsize=9)
    fig.tight_layout()
    args.plot.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.plot, dpi=120)
    plt.close(fig)
    print("percent  queries  pairs  test mR  two-stage mR")
    for r in rows:
        print(f"{r['percent']:7g}  {r['marked_images']:7d}  {r['train_pairs']:5d}  "
              f"{r['mR']:7.2f}  {r['two_stage_mR']:7.2f}")  # fmt: skip
    print(f"total {seconds / 60:.1f} min; plot {args.plot}")


if __name__ == "__main__":
    main()
