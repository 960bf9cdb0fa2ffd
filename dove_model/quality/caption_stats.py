"""Per-caption and per-split facts the caption suites check (pandas, vectorised)."""

from __future__ import annotations

import pandas as pd

from dove_model.model.tokens import tokenize  # the model's tokenizer (DOVE.md, text side)


def normalise(text: pd.Series) -> pd.Series:
    return text.str.lower().str.replace(r"[^a-z0-9]+", " ", regex=True).str.strip()


def caption_facts(manifest: pd.DataFrame) -> pd.DataFrame:
    """One row per caption: text (null when blank), token count, the row reference, and whether
    the same text is used for an image of another split."""
    text = manifest["caption"].fillna("")
    blank = text.str.strip() == ""
    norm = normalise(text)
    train_texts = set(norm[(manifest["split"] == "train") & ~blank])
    ref = (
        "line "
        + manifest["source_line"].astype("string").fillna("?")
        + " (image "
        + manifest["image_id"].astype("string")
        + ")"
    )
    return pd.DataFrame(
        {
            "ref": ref.astype(str),
            "image_id": manifest["image_id"].astype(str),
            "split": manifest["split"].astype(str),
            "caption_text": text.mask(blank).astype(object),
            "caption_norm": norm.mask(blank).astype(object),
            "n_tokens": text.map(lambda t: len(tokenize(t))).mask(blank).astype("Float64"),
            "shared_with_train": (
                (manifest["split"] != "train") & norm.isin(train_texts) & ~blank
            ).astype(bool),
        }
    )


def split_facts(manifest: pd.DataFrame) -> pd.DataFrame:
    """One row per non-train split: out-of-vocabulary rate against the train vocabulary and the
    share of its captions whose text also appears in train."""
    tokens = manifest["caption"].fillna("").map(tokenize)
    is_train = manifest["split"] == "train"
    vocab = {w for words in tokens[is_train] for w in words}
    train_texts = set(normalise(manifest.loc[is_train, "caption"].fillna("")))
    rows = []
    for split in sorted(set(manifest["split"]) - {"train"}):
        part = manifest["split"] == split
        words = [w for ws in tokens[part] for w in ws]
        oov = sum(w not in vocab for w in words)
        shared = normalise(manifest.loc[part, "caption"].fillna("")).isin(train_texts)
        rows.append(
            {
                "ref": f"split {split}",
                "split": split,
                "n_words": len(words),
                "n_oov_words": oov,
                "oov_rate": oov / len(words) if words else 0.0,
                "n_captions": int(part.sum()),
                "n_shared_with_train": int(shared.sum()),
                "shared_with_train_rate": float(shared.mean()) if part.any() else 0.0,
            }
        )
    columns = ["ref", "split", "n_words", "n_oov_words", "oov_rate", "n_captions"]
    return pd.DataFrame(rows, columns=[*columns, "n_shared_with_train", "shared_with_train_rate"])
