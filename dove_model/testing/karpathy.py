"""A UCM-shaped dataset in the Karpathy format (``dataset.json`` + ``images/``), tiny."""

from __future__ import annotations

import json
from pathlib import Path

from dove_model.testing.deployment import SCENES, scene_image


def karpathy_folder(root: Path, per_scene: int = 5) -> Path:
    """Per scene ``per_scene - 1`` train images and 1 test, 2 captions each, 64 px PNGs."""
    (root / "images").mkdir(parents=True)
    images, sent = [], 0
    for s, (scene, (_, caption)) in enumerate(SCENES.items()):
        for i in range(per_scene):
            name = f"{scene}{i}.png"
            scene_image(scene, 100 * s + i, size=64).save(root / "images" / name)
            raws = [caption, f"there is {caption}"]
            images.append(
                {
                    "filename": name,
                    "imgid": len(images),
                    "split": "test" if i == 0 else "train",
                    "sentids": [sent, sent + 1],
                    "sentences": [{"raw": r, "sentid": sent + j} for j, r in enumerate(raws)],
                }
            )
            sent += 2
    (root / "dataset.json").write_text(json.dumps({"images": images, "dataset": "UCM"}))
    return root
