"""Which bands make a chip: names or 1-based indices resolved against a scene's assets.

A token is a 1-based band index of the scene's main asset, or a name. Names are compared
case-insensitively with leading zeros of band numbers dropped (``B4`` = ``b04``), against, in
order: the STAC band metadata of the assets (``name`` and ``common_name``: ``B04`` / ``red``),
single-band assets whose key is the name (``red``, ``B04`` in Sentinel-2 items), then the main
asset's file: GDAL band descriptions (``B4``) and colour interpretation (``red``, ``green``,
``blue``, ``gray``).

Without tokens a chip is RGB when the main asset's bands can be named red, green and blue (STAC
common names, descriptions, colour interpretation), else when the item's assets can (one asset
per band), else bands 1, 2, 3 of a 3-band file, else band 1 of a 1- or 2-band file (grey); a
file of 4 or more unnamed bands needs ``--bands``.

The main asset is ``--asset`` if given, else ``visual``, else the first asset STAC lists with 3
or more bands, else the first raster asset.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from dove_model.errors import DataFormatError
from dove_model.geo.sources import AssetRef, Scene

RGB_NAMES = ("red", "green", "blue")


@dataclass(frozen=True)
class FileInfo:
    """What GDAL says about one raster file's bands."""

    count: int
    dtypes: tuple[str, ...]
    descriptions: tuple[str | None, ...]
    colorinterp: tuple[str, ...]  # lower-case GDAL names: red, green, blue, gray, alpha, ...


@dataclass(frozen=True)
class BandRef:
    """One band of a chip: band ``index`` (1-based) of the file ``href`` (asset ``asset``)."""

    asset: str
    href: str
    index: int
    label: str


FileInfoOf = Callable[[AssetRef], FileInfo]


def normalise(name: str) -> str:
    """``"B04"`` -> ``"b4"``, ``"B8A"`` -> ``"b8a"``, ``"Grey"`` -> ``"gray"``."""
    text = name.strip().lower()
    match = re.fullmatch(r"([a-z_]+)0*(\d+)([a-z]?)", text)
    if match:
        return f"{match[1]}{match[2]}{match[3]}"
    return "gray" if text == "grey" else text


def main_asset(scene: Scene, key: str | None) -> AssetRef:
    if key is not None:
        return scene.asset(key)
    for asset in scene.assets:
        if asset.key == "visual":
            return asset
    multi = [a for a in scene.assets if len(a.bands) >= 3]
    return multi[0] if multi else scene.assets[0]


def resolve_bands(
    scene: Scene, tokens: Sequence[str] | None, asset_key: str | None, info_of: FileInfoOf
) -> tuple[BandRef, ...]:
    """The bands a chip of ``scene`` is made of, in chip channel order."""
    main = main_asset(scene, asset_key)
    if tokens is None:
        return _default_bands(scene, main, info_of)
    ordered = (main, *(a for a in scene.assets if a is not main))
    return tuple(_resolve(t, scene, ordered, main, info_of) for t in tokens)


def _default_bands(scene: Scene, main: AssetRef, info_of: FileInfoOf) -> tuple[BandRef, ...]:
    for assets in (main,), scene.assets:
        try:
            return tuple(_resolve(n, scene, assets, main, info_of) for n in RGB_NAMES)
        except DataFormatError:
            pass
    info = info_of(main)
    if info.count == 3:
        return tuple(_by_index(str(i), scene, main, info) for i in (1, 2, 3))
    if info.count <= 2:
        return (_by_index("1", scene, main, info),)
    raise DataFormatError(
        f"{scene.origin}: {info.count} bands ({_available(main, info)}) and none named "
        "red/green/blue: choose 1 or 3 with --bands"
    )


def _resolve(
    token: str,
    scene: Scene,
    assets: Sequence[AssetRef],
    main: AssetRef,
    info_of: FileInfoOf,
) -> BandRef:
    if token.isdigit():
        return _by_index(token, scene, main, info_of(main))
    want = normalise(token)
    for asset in assets:
        for i, band in enumerate(asset.bands, start=1):
            names = {normalise(n) for n in (band.name, band.common_name) if n}
            if want in names:
                return BandRef(asset.key, asset.href, i, band.name or token)
    for asset in assets:
        if normalise(asset.key) == want and len(asset.bands) <= 1:
            return BandRef(asset.key, asset.href, 1, asset.key)
    info = info_of(main)
    for i, text in enumerate(info.descriptions, start=1):
        if text and normalise(text) == want:
            return BandRef(main.key, main.href, i, text)
    for i, colour in enumerate(info.colorinterp, start=1):
        if colour == want:
            return BandRef(main.key, main.href, i, token)
    raise DataFormatError(f"{scene.origin}: no band {token!r} ({_available(main, info)})")


def _by_index(token: str, scene: Scene, main: AssetRef, info: FileInfo) -> BandRef:
    index = int(token)
    if not 1 <= index <= info.count:
        raise DataFormatError(
            f"{scene.origin}: no band {index} in asset {main.key!r} ({info.count} bands)"
        )
    label = info.descriptions[index - 1] or f"band{index}"
    return BandRef(main.key, main.href, index, label)


def _available(main: AssetRef, info: FileInfo) -> str:
    names = []
    for i in range(1, info.count + 1):
        text = info.descriptions[i - 1]
        colour = info.colorinterp[i - 1]
        names.append(f"{i}={text or colour}")
    return f"asset {main.key!r} bands: {', '.join(names)}"
