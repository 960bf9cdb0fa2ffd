"""The search page's map, the parts below the browser (issue 28): Leaflet vendored from an npm
tarball checked against its pinned sha512 (a tampered or incomplete tarball refused, a
vendored folder left alone, the Bento including it), the basemap setting validated, and the
map settings the page reads for an index with and without footprints."""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml
from bentoml._internal.bento.build_config import BentoPathSpec

from dove_model.config import MapParams, Params, parse_params
from dove_model.errors import ConfigError
from dove_model.index import load_archive
from dove_model.serving.map_view import map_config
from dove_model.serving.page_assets import LEAFLET, NpmPackage, is_vendored, vendor
from dove_model.testing.deployment import (
    SCENES,
    deploy_model,
    synthetic_dataset,
    tiny_model_dir,
)
from dove_model.testing.geo_index import write_chips

REPO = Path(__file__).resolve().parents[2]


def tarball(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


def sri(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def package_for(data: bytes, files: dict[str, str]) -> NpmPackage:
    return NpmPackage(name="demo", version="1.0.0", integrity=sri(data), files=files)


FILES = {"package/dist/a.js": "a.js", "package/dist/img/b.png": "img/b.png"}
CONTENT = {"package/dist/a.js": b"var a;", "package/dist/img/b.png": b"png", "package/x": b"x"}


def test_a_verified_tarball_is_extracted_once(tmp_path: Path) -> None:
    data = tarball(CONTENT)
    package = package_for(data, FILES)
    local = tmp_path / "demo-1.0.0.tgz"
    local.write_bytes(data)
    [folder] = vendor(tmp_path / "vendor", tarballs={"demo": local}, packages=(package,))
    assert (folder / "a.js").read_bytes() == b"var a;" and (folder / "img/b.png").is_file()
    assert not (folder / "x").exists()  # only the listed files
    assert is_vendored(package, tmp_path / "vendor")
    local.unlink()  # vendored: nothing is read again (no tarball, no registry)
    vendor(tmp_path / "vendor", registry="http://127.0.0.1:9/", packages=(package,))
    assert not is_vendored(replace(package, version="1.0.1"), tmp_path / "vendor")


def test_a_tarball_that_does_not_match_its_integrity_is_refused(tmp_path: Path) -> None:
    package = package_for(tarball(CONTENT), FILES)
    tampered = tmp_path / "demo.tgz"
    tampered.write_bytes(tarball({**CONTENT, "package/dist/a.js": b"alert(1)"}))
    with pytest.raises(ConfigError, match="integrity mismatch"):
        vendor(tmp_path / "vendor", tarballs={"demo": tampered}, packages=(package,))
    assert not (tmp_path / "vendor").exists()


def test_a_tarball_without_a_listed_file_is_refused(tmp_path: Path) -> None:
    data = tarball({"package/dist/a.js": b"var a;"})
    local = tmp_path / "demo.tgz"
    local.write_bytes(data)
    with pytest.raises(ConfigError, match=r"has no package/dist/img/b\.png"):
        vendor(tmp_path / "v", tarballs={"demo": local}, packages=(package_for(data, FILES),))


def test_an_unreachable_registry_is_one_clear_error(tmp_path: Path) -> None:
    package = package_for(tarball(CONTENT), FILES)
    with pytest.raises(ConfigError, match=r"not reachable .* --tarball"):
        vendor(tmp_path / "v", registry="http://127.0.0.1:9", packages=(package,))


def test_leaflet_is_pinned_and_the_bento_includes_the_vendored_files() -> None:
    assert LEAFLET.url() == "https://registry.npmjs.org/leaflet/-/leaflet-1.9.4.tgz"
    assert LEAFLET.integrity.startswith("sha512-")
    bentofile = yaml.safe_load((REPO / "bentofile.yaml").read_text())
    spec = BentoPathSpec(bentofile["include"], bentofile["exclude"], str(REPO))
    for rel in LEAFLET.files.values():
        assert spec.includes(f"serving/static/vendor/leaflet/{rel}"), rel
    assert "/serving/static/vendor/" in (REPO / ".gitignore").read_text().splitlines()


@pytest.mark.parametrize(
    "url",
    ["ftp://tiles/{z}/{x}/{y}.png", "https://tiles.example/{z}/{x}.png", "javascript:{x}{y}{z}"],
)
def test_a_basemap_must_be_an_xyz_tile_url(url: str) -> None:
    with pytest.raises(ConfigError, match=r"serve\.map\.basemap_url"):
        parse_params({"serve": {"map": {"basemap_url": url}}})


def test_map_settings_with_and_without_footprints(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    model = tiny_model_dir(tmp_path / "model", [c for _, c in SCENES.values()])
    plain = deploy_model(tmp_path / "plain", synthetic_dataset(tmp_path / "a", 1), model)
    assert map_config(load_archive(plain.index_dir, Params().index), MapParams()) == {
        "geo": False,
        "bounds": None,
        "basemap": None,
    }
    dataset = synthetic_dataset(tmp_path / "b", per_scene=1)
    write_chips(dataset)  # image i at lon i..i+1, lat 45..46; image 0 also at -1..0
    geo = deploy_model(tmp_path / "geo", dataset, model)
    url = "https://tile.example.org/{z}/{x}/{y}.png"
    settings = MapParams(basemap_url=url, attribution="© tiles", max_zoom=17)
    assert map_config(load_archive(geo.index_dir, Params().index), settings) == {
        "geo": True,
        "bounds": [-1.0, 45.0, 3.0, 46.0],
        "basemap": {"url": url, "attribution": "© tiles", "max_zoom": 17},
    }
