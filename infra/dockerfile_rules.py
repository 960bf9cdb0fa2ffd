"""The Dockerfile rules that matter here, checked by parsing (hadolint covers the rest).

- every base image has an explicit tag, never ``latest``; a base named by a build argument is
  checked as its default; the final base is pinned by digest unless it is one of the
  project's own local bases (``localhost/...``, built by ``make images`` from Debian packages)
- the final stage runs as a numeric, non-root user
- no secret baked in: no ENV/ARG whose name looks like a credential carries a value, and
  no ``ADD`` from a URL
- no build tool in the final stage: no compiler or uv copied or installed there (uv
  bind-mounted from another stage for one ``RUN`` is used, not installed)
- the OCI labels an operator needs to trace an image back to its commit

Run: ``python -m infra.dockerfile_rules infra/docker/Dockerfile``.
"""

from __future__ import annotations

import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

SECRET_NAME = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|ACCESS_KEY|PRIVATE_KEY)", re.I)
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
BUILD_TOOLS = re.compile(r"\b(gcc|g\+\+|clang|make|build-essential|cmake|uv|pip)\b")
LOCAL_BASE = "localhost/dove-ops/"  # built here from Debian packages: no registry, no digest
REQUIRED_LABELS = (
    "org.opencontainers.image.title",
    "org.opencontainers.image.source",
    "org.opencontainers.image.version",
    "org.opencontainers.image.revision",
    "org.opencontainers.image.licenses",
)


@dataclass(frozen=True)
class Instruction:
    line: int
    keyword: str
    args: str


@dataclass
class Stage:
    image: str
    name: str | None
    line: int
    instructions: list[Instruction] = field(default_factory=list)


def parse(text: str) -> list[Stage]:
    """Split a Dockerfile into stages of instructions (continuations joined, comments gone).
    A stage's base written as ``${ARG}`` is resolved to the default of a global ``ARG``."""
    stages: list[Stage] = []
    global_args: dict[str, str] = {}
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        start = start or number
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, args = (pending + stripped).partition(" ")
        instruction = Instruction(start, keyword.upper(), args.strip())
        pending, start = "", 0
        if instruction.keyword == "FROM":
            words = [w for w in instruction.args.split() if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(_resolve(words[0], global_args), name, instruction.line))
        elif instruction.keyword == "ARG" and not stages:
            global_args.update(_assignments(instruction.args))
        elif stages:
            stages[-1].instructions.append(instruction)
    return stages


def _resolve(image: str, args: dict[str, str]) -> str:
    """``${NAME}`` / ``$NAME`` replaced by the global ARG's default (kept when it has none)."""
    return re.sub(
        r"\$\{(\w+)\}|\$(\w+)",
        lambda m: args.get(m.group(1) or m.group(2)) or m.group(0),
        image,
    )


def _tag_problem(image: str) -> str | None:
    if "$" in image:
        return f"{image}: base image from a build argument cannot be checked"
    without_digest = image.split("@", 1)[0]
    last = without_digest.rsplit("/", 1)[-1]
    if ":" not in last:
        return f"{image}: no tag"
    if last.endswith(":latest"):
        return f"{image}: 'latest' is not a pin"
    return None


def check(text: str, filename: str = "Dockerfile") -> list[str]:
    """Every rule broken, as ``file:line: message``; empty when the Dockerfile passes."""
    stages = parse(text)
    if not stages:
        return [f"{filename}: no FROM"]
    problems: list[str] = []
    stage_names = {stage.name for stage in stages if stage.name}
    for stage in stages:
        if stage.image not in stage_names and (problem := _tag_problem(stage.image)):
            problems.append(f"{filename}:{stage.line}: {problem}")
        for ins in stage.instructions:
            problems += [f"{filename}:{ins.line}: {p}" for p in _instruction_problems(ins)]
            source = re.search(r"--from=(\S+)", ins.args) if ins.keyword == "COPY" else None
            external = source.group(1) if source and source.group(1) not in stage_names else None
            if external and (problem := _tag_problem(external)):
                problems.append(f"{filename}:{ins.line}: {problem}")
    final = stages[-1]
    pinned = DIGEST.search(final.image) or final.image.startswith(LOCAL_BASE)
    if not pinned and final.image not in stage_names:
        problems.append(f"{filename}:{final.line}: final base {final.image} not pinned by digest")
    problems += [f"{filename}:{p}" for p in _final_stage_problems(final)]
    return problems


def _instruction_problems(ins: Instruction) -> list[str]:
    problems = []
    if ins.keyword in {"ENV", "ARG"}:
        for name, value in _assignments(ins.args):
            if SECRET_NAME.search(name) and value:
                problems.append(f"{ins.keyword} {name} bakes a credential into the image")
    if ins.keyword == "ADD" and re.search(r"\bhttps?://", ins.args):
        problems.append("ADD from a URL (unverified download)")
    return problems


def _assignments(args: str) -> list[tuple[str, str]]:
    words = shlex.split(args, posix=True)
    if len(words) >= 2 and "=" not in words[0]:  # legacy `ENV NAME value`
        return [(words[0], " ".join(words[1:]))]
    return [(w.partition("=")[0], w.partition("=")[2]) for w in words]


def _final_stage_problems(final: Stage) -> list[str]:
    problems = []
    users = [ins for ins in final.instructions if ins.keyword == "USER"]
    if not users:
        problems.append(f"{final.line}: final stage has no USER (runs as root)")
    else:
        user = users[-1].args.split(":", 1)[0]
        if not user.isdigit() or int(user) == 0:
            problems.append(f"{users[-1].line}: USER {user}: use a numeric non-root uid")
    for ins in final.instructions:
        copies_tool = ins.keyword == "COPY" and re.search(r"--from=\S*uv\b", ins.args)
        # a tool bind-mounted from another stage for one step is not in the image
        command = re.sub(r"--mount=\S+\s*", "", ins.args)
        mounted = re.search(r"--mount=type=bind,from=\S+target=\S*/uv\b", ins.args)
        installs_tool = (
            ins.keyword == "RUN"
            and re.search(r"\binstall\b", command)
            and not (mounted and "apt-get" not in command)
        )
        if copies_tool or (installs_tool and BUILD_TOOLS.search(command)):
            problems.append(f"{ins.line}: build tool in the final stage: {ins.args[:60]}")
    labels = " ".join(ins.args for ins in final.instructions if ins.keyword == "LABEL")
    problems += [
        f"{final.line}: missing LABEL {key}" for key in REQUIRED_LABELS if key not in labels
    ]
    return problems


def main(argv: list[str] | None = None) -> int:
    paths = [Path(p) for p in (argv if argv is not None else sys.argv[1:])]
    problems = [p for path in paths for p in check(path.read_text(encoding="utf-8"), str(path))]
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
