"""The family registry: one line per model family, and the lookups that go through it.

A family is a package under ``dove_model/families/`` with two modules the rest of the code
reaches only through here: ``settings.py`` (``SETTINGS``: its ``train.profiles.<p>.model``
section, plain pydantic data) and ``spec.py`` (``SPEC``: a :class:`~dove_model.families.spec.
FamilySpec`, its code). Both are imported on first use, so that ``config.py`` can validate
every family's settings without importing any model code, and a family's heavy imports
(open_clip, timm) happen only when that family is used. Adding a family: one line below
(docs/architecture.md, "Adding a family").
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dove_model.config import FamilySettings
    from dove_model.families.spec import FamilySpec

FAMILY_PACKAGES: dict[str, str] = {
    "dove": "dove_model.families.dove",  # the paper's model: regions, words, two-stage search
    "dual": "dove_model.families.dual",  # CLIP-style dual encoder: pretrained towers + heads
    "clip": "dove_model.families.clip",  # a user's open_clip checkpoint, zero-shot or tuned
}
# what a model directory or index from before families existed was built by
LEGACY_FAMILY = "dove"


class UnknownFamily(ValueError):
    """A family name no line above registers."""

    def __init__(self, name: object) -> None:
        super().__init__(f"unknown model family {name!r} (known: {', '.join(FAMILY_PACKAGES)})")


def family_names() -> tuple[str, ...]:
    return tuple(FAMILY_PACKAGES)


def _package(name: object) -> str:
    if not isinstance(name, str) or name not in FAMILY_PACKAGES:
        raise UnknownFamily(name)
    return FAMILY_PACKAGES[name]


@cache
def settings_class(name: str) -> type[FamilySettings]:
    """The pydantic model of family ``name``'s settings."""
    return importlib.import_module(f"{_package(name)}.settings").SETTINGS


@cache
def family_spec(name: str) -> FamilySpec:
    """Family ``name``'s code: build, train, save/load, encoder, packaging."""
    return importlib.import_module(f"{_package(name)}.spec").SPEC
