"""The two images, built for real with the installed engine (`dove images build`, what `make
images` runs) from the package registries alone, and run as containers.

The pipeline image: non-root, labelled with its commit, no credential in its environment,
the locked environment importable. The serving image (`bentoml containerize` on the
project's base, a tiny model in its Bento): starts read-only and non-root, answers /readyz,
a text and an image search, and the same bad-input table as the service from the checkout.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from dove_model.config import load_params
from dove_model.serving.launch import free_port, serving_env
from dove_model.testing.bad_input import BAD_QUERIES, BAD_UPLOADS, HOSTILE, error_text
from dove_model.testing.deployment import DemoDeployment, deploy_synthetic

# a first build on a fresh machine downloads and installs the locked wheels (minutes)
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(2400)]

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVING_TAG = "localhost/dove-ops/dove-retrieval:test"
API_KEY = "container-key-1"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|API_?KEY|ACCESS_KEY", re.I)


@pytest.fixture(scope="module")
def pipeline_image(container_engine, build_images) -> str:
    out = build_images("pipeline")
    for step in ("debian", "python", "base", "pipeline"):
        assert re.search(rf"^{step}\s", out, re.M), out
    return load_params(REPO_ROOT / "params.yaml").pipeline.image


@pytest.fixture(scope="module")
def engine(container_engine):
    return container_engine


def _labels(engine, tag: str) -> dict[str, str]:
    done = engine.run("image", "inspect", "--format", "{{json .Config.Labels}}", tag)
    return json.loads(done.stdout)


def test_the_pipeline_image_runs_the_cli_as_non_root(engine, pipeline_image: str) -> None:
    done = engine.run("run", "--rm", pipeline_image, "sh", "-c", "id -u && dove --help")
    uid, _, help_text = done.stdout.partition("\n")
    assert uid.strip() == "10001"
    assert "pipeline" in help_text and "train" in help_text
    imports = (
        "import torch, faiss, timm, mlflow, kfp, dove_model, components; print(torch.__version__)"
    )
    version = engine.run("run", "--rm", pipeline_image, "python", "-c", imports).stdout
    assert version.startswith("2.13.0"), version


def test_the_pipeline_image_holds_this_checkouts_code(engine, pipeline_image: str) -> None:
    """Every module of the library, the components and infra is the checkout's (a stale layer
    or a cached wheel would ship old code)."""
    import hashlib

    files = sorted(
        p.relative_to(REPO_ROOT).as_posix()
        for package in ("dove_model", "components", "infra")
        for p in (REPO_ROOT / package).rglob("*.py")
        if "__pycache__" not in p.parts
    )
    site = "/opt/venv/lib/python3.11/site-packages"
    script = f"cd {site} && sha256sum " + " ".join(files)
    done = engine.run("run", "--rm", pipeline_image, "sh", "-c", script)
    in_image = {
        name: digest for digest, name in (line.split() for line in done.stdout.splitlines())
    }
    local = {name: hashlib.sha256((REPO_ROOT / name).read_bytes()).hexdigest() for name in files}
    assert in_image == local


def test_the_pipeline_image_is_labelled_and_carries_no_secret(engine, pipeline_image: str) -> None:
    labels = _labels(engine, pipeline_image)
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert labels["org.opencontainers.image.revision"] == head
    assert labels["org.opencontainers.image.title"] == "dove-ops"
    config = engine.run("image", "inspect", "--format", "{{json .Config.Env}}", pipeline_image)
    env = dict(item.partition("=")[::2] for item in json.loads(config.stdout))
    assert not {k for k, v in env.items() if SECRET_NAME.search(k) and v}
    files = engine.run(
        "run", "--rm", pipeline_image, "sh", "-c",
        "ls /app; test ! -e /app/data && test ! -e /app/mlruns && test ! -e /root/.cache/uv "
        "&& ! command -v uv && ! command -v gcc && echo clean",
    )  # fmt: skip
    assert files.stdout.split() == ["params.yaml", "clean"], files.stdout


# ------------------------------------------------------------------------ the serving image
@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> DemoDeployment:
    deployed = deploy_synthetic(tmp_path_factory.mktemp("containerized"))
    subprocess.run(["chmod", "-R", "a+rX", str(deployed.index_dir.parent)], check=True)
    return deployed


@pytest.fixture(scope="module")
def serving_image(engine, build_images, deployment: DemoDeployment) -> str:
    env = serving_env(bentoml_home=deployment.bentoml_home)
    for name in ("DOVE_MODEL_DIR", "DOVE_MODEL_TAG", "DOVE_API_KEY", "DOVE_PARAMS"):
        env.pop(name, None)
    out = build_images("serving", "--serving-tag", SERVING_TAG, env=env)
    assert re.search(r"^serving\s", out, re.M), out
    return SERVING_TAG


@pytest.fixture(scope="module")
def container(engine, serving_image: str, deployment: DemoDeployment) -> Iterator:
    from infra.images.containers import running_container

    if not engine.can_run:
        pytest.skip(f"{engine.name} builds images but does not run containers")
    with running_container(
        engine,
        serving_image,
        port=free_port(),
        env={"DOVE_API_KEY": API_KEY},
        mounts=[f"{deployment.index_dir}:/home/bentoml/index:ro"],
        options=["--read-only", "--cap-drop=ALL", "--security-opt=no-new-privileges"],
        command=["serve"],
    ) as running:
        running.wait_http("/readyz")
        yield running


@pytest.fixture(scope="module")
def client(container) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=container.url, headers=AUTH, timeout=60) as http:
        yield http


def test_the_serving_container_runs_read_only_as_non_root(container) -> None:
    status, uid = container.exec("id", "-u")
    assert status == 0 and uid != "0"
    status, _ = container.exec("touch", "/home/bentoml/bento/written")
    assert status != 0  # the root file system is read-only
    config = container.inspect()["HostConfig"]
    assert config["ReadonlyRootfs"] is True


def test_the_serving_container_searches_by_text_and_by_image(client: httpx.Client) -> None:
    hits = client.post("/search_images", json={"query": "a lake", "k": 3}).json()["results"]
    assert len(hits) == 3
    png = io.BytesIO()
    Image.new("RGB", (64, 64), (40, 90, 160)).save(png, format="PNG")
    found = client.post("/search_texts", files={"image": ("q.png", png.getvalue(), "image/png")})
    assert found.status_code == 200 and found.json()["results"], found.text
    assert httpx.post(client.base_url.join("/info"), json={}).status_code == 401  # no key


@pytest.mark.parametrize(("payload", "message"), BAD_QUERIES)
def test_bad_queries_are_json_400(client: httpx.Client, payload: dict, message: str) -> None:
    assert message in error_text(client.post("/search_images", json=payload), 400)


@pytest.mark.parametrize(("upload", "status", "message"), BAD_UPLOADS)
def test_bad_uploads_are_json_4xx(
    client: httpx.Client, upload: tuple, status: int | tuple[int, ...], message: str
) -> None:
    response = client.post("/search_texts", files={"image": upload})
    assert message in error_text(response, status)


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "message"),
    [case[1:] for case in HOSTILE],
    ids=[case[0] for case in HOSTILE],
)
def test_hostile_input_is_a_json_4xx_and_the_container_stays_ready(
    container, client: httpx.Client, method: str, path: str, kwargs: dict, status: int, message: str
) -> None:
    response = client.request(method, path, **kwargs)
    assert message in error_text(response, status)
    assert httpx.get(container.url + "/readyz", timeout=10).status_code == 200
