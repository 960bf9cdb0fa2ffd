"""model.glove_path: GloVe-format vectors initialise the word embedding when training starts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from dove_model.config import DataParams, Params, SynthParams, parse_params
from dove_model.data.manifest import load_split
from dove_model.data.prepare import prepare
from dove_model.errors import ConfigError
from dove_model.families.dispatch import train
from dove_model.families.dove.io import load_model_dir
from dove_model.families.dove.model import DoveModel
from dove_model.families.dove.settings import DoveSettings
from dove_model.families.dove.text import init_word_embeddings
from dove_model.families.dove.vocab import PAD_ID, UNK_ID, Vocabulary

TINY = {"backbone": "resnet18", "embed_dim": 16, "word_dim": 4, "vocab_min_freq": 1}
CAPTIONS = ["a red house near a river", "green field with trees", "a grey road"]


def write_vectors(path: Path, rows: dict[str, list[float]], extra: str = "") -> Path:
    lines = [" ".join([word, *(repr(v) for v in vec)]) for word, vec in rows.items()]
    path.write_text("\n".join(lines) + "\n" + extra, encoding="utf-8")
    return path


def tiny_model() -> tuple[DoveModel, Vocabulary]:
    torch.manual_seed(0)
    params = DoveSettings(**TINY)
    vocab = Vocabulary.build(CAPTIONS, min_freq=1, max_len=params.max_len)
    return DoveModel(params, len(vocab)), vocab


def test_rows_of_known_words_come_from_the_file_others_keep_their_init(tmp_path: Path) -> None:
    model, vocab = tiny_model()
    before = model.text.embed.weight.detach().clone()
    rows = {"river": [0.5, -1.0, 2.0, 0.25], "road": [1e-3, 3.0, -0.5, 7.0]}
    path = write_vectors(
        tmp_path / "vectors.txt",
        {"unseen": [9.0, 9.0, 9.0, 9.0], **rows, "<pad>": [5.0, 5.0, 5.0, 5.0]},
        extra="\nriver 8 8 8 8\n",  # a blank line is skipped; a repeated word keeps its first row
    )
    draws = torch.random.get_rng_state()
    assert init_word_embeddings(model.text, vocab.word2idx, path) == 2
    assert torch.equal(torch.random.get_rng_state(), draws)  # no random numbers drawn
    after = model.text.embed.weight.detach()
    changed = {vocab.word2idx[w] for w in rows}
    for word, vector in rows.items():
        assert torch.equal(after[vocab.word2idx[word]], torch.tensor(vector))
    others = [i for i in range(len(vocab)) if i not in changed]
    assert torch.equal(after[others], before[others])
    assert torch.equal(after[PAD_ID], torch.zeros(4)) and UNK_ID in others


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "river 1 2 3 4 5 6 7 8\nroad 1 2 3 4 5 6 7 8\n",
            r":1: expected a word and 4 numbers.*found 8",
        ),
        ("road 1 2 3 4\nriver 1 2 3\n", r":2: expected a word and 4 numbers.*found 3"),
        ("zzz 1 2 3 x\nroad 1 2 3 4\nriver 1 2 oops 4\n", r":3: 'river': 'oops' is not a finite"),
        ("road 1 2 nan 4\n", r":1: 'road': 'nan' is not a finite number"),
        ("3 4\nroad 1 2 3 4\n", r":1: expected a word and 4 numbers.*found 1"),  # word2vec header
        ("alpha 1 2 3 4\nbeta 1 2 3 4\n", r": none of the \d+ vocabulary words"),
    ],
)
def test_a_bad_file_is_a_config_error_naming_file_and_line(
    tmp_path: Path, content: str, message: str
) -> None:
    model, vocab = tiny_model()
    path = tmp_path / "vectors.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"vectors\.txt \(model\.glove_path\)" + message):
        init_word_embeddings(model.text, vocab.word2idx, path)


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    model, vocab = tiny_model()
    with pytest.raises(ConfigError, match=r"absent\.txt \(model\.glove_path\): GloVe file not"):
        init_word_embeddings(model.text, vocab.word2idx, tmp_path / "absent.txt")


# ------------------------------------------------------------------------------------ training
TRAIN_MODEL = {
    "family": "dove",
    "backbone": "resnet18",
    "embed_dim": 16,
    "word_dim": 8,
    "vocab_min_freq": 1,
}


def train_params(tmp: Path, glove: Path | None, **profile: Any) -> Params:
    demo = {
        "epochs": 1,
        "batch_size": 16,
        "lr": 0.0,  # the saved embedding is the initial one
        "resize": 72,
        "crop": 64,
        "eval_size": 64,
        "amp": False,
        "max_minutes": None,
        "model": {**TRAIN_MODEL, "glove_path": str(glove) if glove else None},
        **profile,
    }
    return parse_params(
        {
            "train": {
                "profile": "demo",
                "cache_dir": str(tmp / "cache"),
                "device": "cpu",
                "profiles": {"demo": demo},
            },
        }
    )


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    synth = SynthParams(n_images=16, image_size=64, val_fraction=0.25, test_fraction=0.25)
    data = DataParams(path=str(root / "synth"), prepared_dir=str(root / "prepared"), synth=synth)
    return prepare(Params(data=data), progress=False)


def embedding(weights_file: Path) -> torch.Tensor:
    return load_file(str(weights_file))["text.embed.weight"]


def test_training_starts_from_the_file_and_the_saved_model_no_longer_needs_it(
    dataset: Path, tmp_path: Path
) -> None:
    torch.set_num_threads(1)
    vocab = Vocabulary.build(load_split(dataset, "train").captions, 1, 47)
    words = [w for w in vocab.word2idx if vocab.word2idx[w] > UNK_ID][:3]
    rows = {w: [float(i + 10 * k) for i in range(8)] for k, w in enumerate(words)}
    glove = write_vectors(tmp_path / "glove.txt", {"notaword": [1.0] * 8, **rows})

    plain = train(dataset, train_params(tmp_path, None), tmp_path / "plain", progress=False)
    result = train(dataset, train_params(tmp_path, glove), tmp_path / "glove", progress=False)
    glove.unlink()  # from here on nothing may read it

    got, seeded = (
        embedding(result.model_dir / "model.safetensors"),
        embedding(plain.model_dir / "model.safetensors"),
    )
    ids = [vocab.word2idx[w] for w in words]
    assert torch.equal(got[ids], torch.tensor(list(rows.values())))
    others = [i for i in range(len(vocab)) if i not in ids]
    assert torch.equal(got[others], seeded[others])  # the same seeded init elsewhere

    loaded = load_model_dir(result.model_dir)
    assert loaded.params.glove_path == str(glove)
    assert torch.equal(loaded.model.text.embed.weight.detach(), got)
    # resuming takes the weights from the checkpoint, not from the (now missing) file
    resumed = train(
        dataset, train_params(tmp_path, glove, epochs=2), tmp_path / "glove", progress=False
    )
    assert resumed.epochs_run == 2
    assert torch.equal(embedding(resumed.model_dir / "model.safetensors"), got)


def test_training_with_a_missing_file_stops_with_a_config_error(
    dataset: Path, tmp_path: Path
) -> None:
    absent = tmp_path / "absent.txt"
    with pytest.raises(ConfigError, match=r"absent\.txt \(model\.glove_path\): GloVe file not"):
        train(dataset, train_params(tmp_path, absent), tmp_path / "run", progress=False)
    assert not (tmp_path / "cache").exists()  # before any feature is computed


def test_a_word_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    model, vocab = tiny_model()
    path = tmp_path / "vectors.txt"
    path.write_bytes(b"road 1 2 3 4\n\xff\xfe 1 2 3 4\n")
    with pytest.raises(ConfigError, match=r"vectors\.txt \(model\.glove_path\):2: .*not UTF-8"):
        init_word_embeddings(model.text, vocab.word2idx, path)
