"""The MLflow pyfunc for either model family, logged *from code* (MLflow "models from code").

MLflow stores this file, not a pickled object; the weights (safetensors), vocabulary and
config travel as the ``model_dir`` artifact (docs/contracts.md section 3).

Input: a DataFrame with optional columns ``text`` (queries) and ``image`` (base64 PNG/JPEG).
Params: ``task`` = ``encode_text`` | ``encode_image`` | ``search``, ``top_k``, and ``family``
(the signature's default is the version's family; a different value is refused).
- encode_text / encode_image: one row per input with its global ``embedding``.
- search: the rows that carry an image form the gallery; each text row gets the ``top_k``
  gallery rows ranked by the model's full score (DOVE: ROAM; dual: cosine), as ``ranking``
  and ``scores``.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

MODEL_DIR_ARTIFACT = "model_dir"
TASKS = ("encode_text", "encode_image", "search")
MAX_IMAGE_PIXELS = 40_000_000


def _decode_image(data: str) -> Any:
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    image = Image.open(io.BytesIO(base64.b64decode(data, validate=True)))
    return image.convert("RGB")


def _column(frame: pd.DataFrame, name: str) -> list[tuple[int, Any]]:
    if name not in frame.columns:
        return []
    return [(i, v) for i, v in enumerate(frame[name].tolist()) if isinstance(v, str) and v]


class DoveRetrievalModel(PythonModel):
    """Text and image encoders plus exhaustive DOVE search over the request's images."""

    def load_context(self, context: Any) -> None:
        from dove_model.families.dispatch import load_encoder

        self.encoder = load_encoder(context.artifacts[MODEL_DIR_ARTIFACT], device="cpu")

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        params = params or {}
        task = str(params.get("task", "encode_text"))
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        expected = params.get("family")
        if expected and expected != self.encoder.family:
            raise ValueError(f"this is a {self.encoder.family} model, not {expected!r}")
        texts = _column(model_input, "text")
        images = _column(model_input, "image")
        if task == "encode_text":
            parts = self.encoder.encode_texts([t for _, t in texts])
            return pd.DataFrame({"row": [i for i, _ in texts], "embedding": list(parts.t_g)})
        if task == "encode_image":
            decoded = [_decode_image(b) for _, b in images]
            parts = self.encoder.encode_images(decoded)
            return pd.DataFrame({"row": [i for i, _ in images], "embedding": list(parts.v_m)})
        if not texts or not images:
            raise ValueError("search needs rows with 'text' (queries) and rows with 'image'")
        top_k = max(1, min(int(params.get("top_k", 5)), len(images)))
        image_parts = self.encoder.encode_images([_decode_image(b) for _, b in images])
        text_parts = self.encoder.encode_texts([t for _, t in texts])
        scores = self.encoder.score(image_parts, text_parts).T  # (queries, gallery)
        order = (-scores).argsort(axis=1)[:, :top_k]
        gallery_rows = [i for i, _ in images]
        return pd.DataFrame(
            {
                "query": [t for _, t in texts],
                "ranking": [[gallery_rows[j] for j in row] for row in order],
                "scores": [[float(scores[q, j]) for j in row] for q, row in enumerate(order)],
            }
        )


mlflow.models.set_model(DoveRetrievalModel())
