"""``dove feedback export``: marks -> caption-image pairs with provenance and roles, the
feedback suite (each expectation shown failing), the data gate on the merged manifest, and
the leak check: a pair used for training never reaches the evaluation side."""

from __future__ import annotations

import itertools
import json
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from dove_model.config import Params
from dove_model.data.feedback_rows import PROVENANCE_FILE, add_feedback
from dove_model.data.manifest import coerce_manifest, read_manifest, write_manifest
from dove_model.feedback.export import LEAK, collect_pairs, export_feedback, gate_pairs
from dove_model.feedback.files import FileStore
from dove_model.feedback.records import FeedbackRecord, QueryRecord
from dove_model.hashing import sha256_file
from dove_model.loop_params import QueryLogParams

ADJECTIVES = ["green", "red", "large", "small", "white", "dense", "sparse", "old"]
NOUNS = ["houses", "trees", "fields", "roads", "tanks", "boats", "ships", "planes"]
PLACES = ["river", "lake", "forest", "harbour", "airport", "beach"]
CAPTIONS = [f"{a} {n} near a {p}" for a, n, p in itertools.product(ADJECTIVES, NOUNS, PLACES)]


def manifest(n_train: int = 20, n_test: int = 6) -> pd.DataFrame:
    rows = []
    for i in range(n_train + n_test):
        split = "train" if i < n_train else "test"
        for j in range(2):
            rows.append(
                {
                    "image_id": f"img{i}",
                    "image_path": f"images/img{i}.png",
                    "caption_id": 2 * i + j,
                    "caption": CAPTIONS[(2 * i + j) % len(CAPTIONS)],
                    "split": split,
                    "label": "scene",
                }
            )
    return coerce_manifest(pd.DataFrame(rows))


def log(
    store: FileStore, marks: list[tuple[str, str, bool]], client: str | None = None
) -> list[str]:
    """One search per (query text, image id, relevant) and its mark; clients vary."""
    ids = []
    for n, (text, image_id, relevant) in enumerate(marks):
        search = QueryRecord.of_search(
            text, 5, [(image_id, 0.9), ("other", 0.1)], ("3", "v1"), 2.0, "text",
            client or f"client{n % 5}",
        )  # fmt: skip
        mark = FeedbackRecord(search.query_id, image_id, relevant, 1, client=search.client)
        store.write([search, mark])
        ids.append(search.query_id)
    return ids


def good_marks(n: int = 30) -> list[tuple[str, str, bool]]:
    """Varied queries on train images, a quarter marked not relevant."""
    texts = CAPTIONS[60 : 60 + n]
    return [(t, f"img{i % 20}", i % 4 != 0) for i, t in enumerate(texts)]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, FileStore]:
    monkeypatch.chdir(tmp_path)
    dataset = tmp_path / "prepared"
    write_manifest(manifest(), dataset)
    return tmp_path, dataset, FileStore(tmp_path / "querylog", QueryLogParams())


def test_export_writes_pairs_with_provenance_that_prepare_merges(project) -> None:
    root, dataset, store = project
    ids = log(store, good_marks())
    result = export_feedback(Params(), store, dataset, root)
    assert result.passed, [c for c in result.checks if not c.success]
    assert result.counts["train_pairs"] == 22 and result.counts["hard_negatives"] == 8
    pairs = pd.read_parquet(root / "data" / "feedback" / "pairs.parquet")
    assert set(pairs["query_id"]) == set(ids)
    first = pairs.set_index("query_id").loc[ids[1]]
    assert (first["caption"], first["model_version"], first["index_version"]) == (
        CAPTIONS[61],
        "3",
        "v1",
    )
    assert (root / "reports" / "feedback" / "summary.json").is_file()
    stamp = json.loads((root / "data-feedback.json").read_text())  # prepare's DVC dependency
    assert stamp["pairs_file"] == "data/feedback/pairs.parquet" and stamp["pairs"] == 30
    assert stamp["pairs_sha256"] == sha256_file(root / "data" / "feedback" / "pairs.parquet")
    export_feedback(Params(), store, dataset, root)  # nothing new: the same stamp, byte for byte
    assert json.loads((root / "data-feedback.json").read_text()) == stamp
    before = len(read_manifest(dataset))
    assert add_feedback(dataset, root / "data" / "feedback") == 22
    merged = read_manifest(dataset)
    assert len(merged) == before + 22 and merged["caption_id"].is_unique
    provenance = pd.read_parquet(dataset / PROVENANCE_FILE)
    assert set(provenance["caption_id"]) == set(merged["caption_id"].iloc[before:])
    assert provenance["query_id"].isin(ids).all() and provenance["relevant"].all()


def test_feedback_for_training_never_reaches_the_evaluation_side(project) -> None:
    root, dataset, store = project
    test_caption = read_manifest(dataset).query("split == 'test'")["caption"].iloc[0]
    marks = [
        *good_marks(),
        ("green trees beside a quiet lake", "img22", True),  # a test image: held out (eval)
        ("many white boats in a harbour", "img23", True),
        (test_caption, "img3", True),  # a train image, but the text is a test caption: leak
    ]
    log(store, marks)
    result = export_feedback(Params(), store, dataset, root)
    counts = result.counts
    assert (counts["eval_pairs"], counts["held_out_leak"]) == (2, 1)
    add_feedback(dataset, root / "data" / "feedback")
    merged = read_manifest(dataset)
    added = merged.iloc[len(manifest()) :]
    test_side = merged[merged["split"] != "train"]
    assert set(added["split"]) == {"train"}
    assert not set(added["image_id"]) & set(test_side["image_id"])
    assert not set(added["caption"].str.lower()) & set(test_side["caption"].str.lower())
    assert (result.pairs["role"] == LEAK).sum() == 1


def test_marks_that_cannot_become_pairs_are_counted(project) -> None:
    _, dataset, store = project
    hashed = QueryRecord.of_search("a secret site", 5, [("img1", 1.0)], ("3", None), 1, "hash")
    unknown = QueryRecord.of_search("a far field", 5, [("gone", 1.0)], ("3", None), 1, "text")
    store.write([hashed, unknown])
    marks = [
        FeedbackRecord(hashed.query_id, "img1", True, 1),
        FeedbackRecord(unknown.query_id, "gone", True, 1),
        FeedbackRecord("f" * 32, "img1", True, 1),  # its search is no longer in the log
    ]
    store.write(marks)
    pairs, counts = collect_pairs(store.queries(), store.feedback(), read_manifest(dataset))
    assert pairs.empty
    assert counts["skipped_text_not_kept"] == 1 and counts["skipped_unknown_image"] == 1
    assert counts["skipped_search_not_in_log"] == 1


def test_the_latest_mark_of_a_result_wins(project) -> None:
    _, dataset, store = project
    (query_id,) = log(store, [("red roofs near a river", "img2", True)])
    later = FeedbackRecord(query_id, "img2", False, 1)
    store.write([later.__class__(**{**later.__dict__, "at": later.at + timedelta(seconds=5)})])
    pairs, _ = collect_pairs(store.queries(), store.feedback(), read_manifest(dataset))
    assert pairs["relevant"].tolist() == [False]


def failing(marks: list[tuple[str, str, bool]], client: str | None = None) -> set[str]:
    """The names of the expectations that fail on these marks."""
    store = FileStore(Path.cwd() / "q", QueryLogParams())
    log(store, marks, client)
    pairs, _ = collect_pairs(store.queries(), store.feedback(), manifest())
    return {c.name for c in gate_pairs(pairs, manifest(), Params()) if not c.success}


def test_a_clean_export_fails_no_expectation(project) -> None:
    assert failing(good_marks()) == set()


@pytest.mark.parametrize(
    ("marks", "client", "expectation"),
    [
        (good_marks(10), None, "feedback_volume"),
        ([(t, i, True) for t, i, _ in good_marks()], None, "feedback_label_balance"),
        ([(t, i, r) for t, i, r in good_marks()], "one-bot", "feedback_no_source_floods"),
        (
            [
                *good_marks(25),
                *[(f"see https://x.io/{n} for planes", "img1", True) for n in range(5)],
            ],
            None,
            "feedback_query_is_a_caption",
        ),
        (
            [*good_marks(22), *[(f"tile X{n}Z99 houses", "img2", True) for n in range(8)]],
            None,
            "feedback_query_is_a_caption",
        ),
        (
            [
                *good_marks(20),
                *[
                    (f"many small white houses near a river bank number {w}", "img3", True)
                    for w in (
                        "one",
                        "two",
                        "three",
                        "four",
                        "five",
                        "six",
                        "seven",
                        "eight",
                        "nine",
                        "ten",
                        "eleven",
                        "twelve",
                    )
                ],
            ],
            None,
            "feedback_queries_not_near_duplicates",
        ),
    ],
    ids=["volume", "balance", "flooding", "urls", "codes", "near-duplicates"],
)
def test_each_feedback_expectation_can_fail(
    project, marks: list, client: str | None, expectation: str
) -> None:
    assert expectation in failing(marks, client)


def test_a_failing_gate_writes_no_data_version(project) -> None:
    root, dataset, store = project
    log(store, good_marks(5))
    result = export_feedback(Params(), store, dataset, root)
    assert not result.passed and result.written is None
    assert not (root / "data" / "feedback" / "pairs.parquet").exists()
    assert "feedback_volume" in (root / "reports" / "feedback" / "summary.json").read_text()


def test_an_export_is_a_new_dvc_data_version(project) -> None:
    from dvc.repo import Repo

    from dove_model.data.versioning import data_version, version_data

    root, dataset, store = project
    Repo.init(str(root), no_scm=True)
    (root / "data" / "synth").mkdir(parents=True)
    (root / "data" / "synth" / "captions.csv").write_text("image,caption\n")
    before = version_data(root, push=False).md5
    log(store, good_marks())
    result = export_feedback(Params(), store, dataset, root)
    assert result.data_version is not None and result.data_version != before
    assert data_version(root) == result.data_version  # data.dvc records it


def test_the_export_command_writes_pairs_or_exits_nonzero(project) -> None:
    from typer.testing import CliRunner

    from dove_model.cli import app

    root, dataset, store = project
    (root / "params.yaml").write_text(
        "feedback:\n  query_log:\n    dir: querylog\n", encoding="utf-8"
    )
    log(store, good_marks(5))
    refused = CliRunner().invoke(app, ["feedback", "export", "--dataset-dir", str(dataset)])
    assert refused.exit_code != 0 and "FAIL feedback_volume" in refused.output
    log(store, good_marks())
    done = CliRunner().invoke(app, ["feedback", "export", "--dataset-dir", str(dataset)])
    assert done.exit_code == 0, done.output
    assert (root / "data" / "feedback" / "pairs.parquet").is_file()
    assert '"train_pairs"' in done.output
