"""What the proxy in front of the retrieval service must enforce, checked against the service.

The service caps bodies, header bytes and count, and times out slow headers and bodies
itself (``dove_model.serving``), but a proxy in front should refuse the same requests first,
where it is cheap, and must not cut off what the service accepts. Two configurations are
kept, both in this repository and both checked here against the service's own constants:

- ingress-nginx: the Ingress (``infra/k8s/components/ingress-nginx``, per-Ingress
  annotations) plus the controller's ConfigMap (``infra/helm/ingress-nginx/values.yaml``,
  settings NGINX only takes per server);
- a plain NGINX server block (``infra/proxy/nginx/dove-retrieval.conf``).

Both are reduced to NGINX directives and checked by :func:`check_directives`; a drift of
either side (a new upload cap in params, a changed annotation) is an error.
"""

from __future__ import annotations

import ast
import inspect
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

INFRA_DIR = Path(__file__).resolve().parent
REPO_ROOT = INFRA_DIR.parent
NGINX_CONF = INFRA_DIR / "proxy" / "nginx" / "dove-retrieval.conf"
INGRESS = INFRA_DIR / "k8s" / "components" / "ingress-nginx" / "ingress.yaml"
INGRESS_NGINX_VALUES = INFRA_DIR / "helm" / "ingress-nginx" / "values.yaml"
SERVICE_FILE = REPO_ROOT / "service.py"
ANNOTATION_PREFIX = "nginx.ingress.kubernetes.io/"
MAX_CLIENT_KEEPALIVE_S = 30.0  # an idle client holds a connection slot no longer than this
MAX_READ_TIMEOUT_MARGIN_S = 30.0
# ingress-nginx setting -> the NGINX directive it writes (the controller's documented mapping)
ANNOTATION_DIRECTIVES = {
    "proxy-body-size": "client_max_body_size",
    "client-body-buffer-size": "client_body_buffer_size",
    "proxy-request-buffering": "proxy_request_buffering",
    "proxy-connect-timeout": "proxy_connect_timeout",
    "proxy-send-timeout": "proxy_send_timeout",
    "proxy-read-timeout": "proxy_read_timeout",
}
CONFIG_DIRECTIVES = {
    "client-header-buffer-size": "client_header_buffer_size",
    "large-client-header-buffers": "large_client_header_buffers",
    "client-header-timeout": "client_header_timeout",
    "client-body-timeout": "client_body_timeout",
    "keep-alive": "keepalive_timeout",
    "keep-alive-requests": "keepalive_requests",
    "upstream-keepalive-timeout": "upstream keepalive_timeout",
}


class ProxyConfigError(ValueError):
    """An NGINX file that does not parse, or a value that does."""


# ------------------------------------------------------------------------ NGINX syntax
@dataclass
class Directive:
    name: str
    args: list[str]
    block: list[Directive] | None = None

    def find(self, name: str) -> list[Directive]:
        return [d for d in self.block or [] if d.name == name]


_TOKEN = re.compile(r"""\s*(?:#[^\n]*|"((?:[^"\\]|\\.)*)"|'([^']*)'|([{};])|([^\s{};'"#]+))""")


def parse_nginx(text: str) -> Directive:
    """The NGINX configuration syntax (directives, arguments, blocks) as a tree."""
    root = Directive("main", [], [])
    stack = [root]
    current: list[str] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            if text[position:].strip():
                raise ProxyConfigError(f"cannot parse near: {text[position : position + 40]!r}")
            break
        position = match.end()
        quoted, single, punct, word = match.groups()
        if punct == "{":
            if not current:
                raise ProxyConfigError("a block without a directive name")
            block = Directive(current[0], current[1:], [])
            stack[-1].block.append(block)  # type: ignore[union-attr]
            stack.append(block)
            current = []
        elif punct == "}":
            if current or len(stack) == 1:
                raise ProxyConfigError("unbalanced '}' or a directive without ';'")
            stack.pop()
        elif punct == ";":
            if not current:
                raise ProxyConfigError("an empty directive")
            stack[-1].block.append(Directive(current[0], current[1:]))  # type: ignore[union-attr]
            current = []
        elif quoted is not None or single is not None or word is not None:
            current.append(next(v for v in (quoted, single, word) if v is not None))
    if current or len(stack) != 1:
        raise ProxyConfigError("unterminated directive or block")
    return root


def parse_size(value: str) -> int:
    """NGINX sizes: bytes, or k/K and m/M suffixes (1024-based)."""
    match = re.fullmatch(r"(\d+)([kKmM]?)", value.strip())
    if match is None:
        raise ProxyConfigError(f"not an NGINX size: {value!r}")
    factor = {"": 1, "k": 1024, "m": 1024 * 1024}[match.group(2).lower()]
    return int(match.group(1)) * factor


def parse_time(value: str) -> float:
    """NGINX times: seconds by default, or ms/s/m/h suffixes."""
    match = re.fullmatch(r"(\d+)(ms|s|m|h)?", value.strip())
    if match is None:
        raise ProxyConfigError(f"not an NGINX time: {value!r}")
    factor = {None: 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[match.group(2)]
    return int(match.group(1)) * factor


# ----------------------------------------------------------------- the two configurations
@dataclass(frozen=True)
class ProxyConfig:
    """One proxy configuration as NGINX directives, and the paths it routes to the service."""

    source: str
    directives: dict[str, str]
    exposed: list[tuple[str, str]] = field(default_factory=list)  # (match kind, path)


def from_nginx_conf(path: Path = NGINX_CONF) -> ProxyConfig:
    tree = parse_nginx(path.read_text(encoding="utf-8"))
    servers = tree.find("server")
    upstreams = tree.find("upstream")
    if len(servers) != 1 or len(upstreams) != 1:
        raise ProxyConfigError(f"{path}: expected one upstream and one server block")
    server, upstream = servers[0], upstreams[0]
    directives = {d.name: " ".join(d.args) for d in server.block or [] if d.block is None}
    for d in upstream.block or []:
        if d.name == "keepalive_timeout":
            directives["upstream keepalive_timeout"] = " ".join(d.args)
    exposed = []
    for location in server.find("location"):
        if any(d.name == "proxy_pass" for d in location.block or []):
            kind, path_ = (
                (location.args[0], location.args[1])
                if len(location.args) == 2
                else ("prefix", location.args[0])
            )
            exposed.append(({"=": "Exact", "~": "Regex"}.get(kind, "Prefix"), path_))
    return ProxyConfig(str(path.relative_to(REPO_ROOT)), directives, exposed)


def from_ingress_nginx(
    ingress_file: Path = INGRESS, values_file: Path = INGRESS_NGINX_VALUES
) -> ProxyConfig:
    ingress = yaml.safe_load(ingress_file.read_text(encoding="utf-8"))
    values = yaml.safe_load(values_file.read_text(encoding="utf-8"))
    annotations = ingress["metadata"].get("annotations", {})
    directives: dict[str, str] = {}
    for key, value in annotations.items():
        if key.startswith(ANNOTATION_PREFIX):
            setting = key.removeprefix(ANNOTATION_PREFIX)
            if setting in ANNOTATION_DIRECTIVES:
                directives[ANNOTATION_DIRECTIVES[setting]] = str(value)
    for key, value in values["controller"]["config"].items():
        if key in CONFIG_DIRECTIVES:
            directives[CONFIG_DIRECTIVES[key]] = str(value)
    for name in ("proxy_read_timeout", "proxy_send_timeout", "proxy_connect_timeout"):
        if name in directives:  # ingress-nginx takes bare seconds
            directives[name] = f"{directives[name]}s"
    exposed = [
        (p["pathType"], p["path"])
        for rule in ingress["spec"]["rules"]
        for p in rule["http"]["paths"]
    ]
    source = f"{ingress_file.relative_to(REPO_ROOT)} + {values_file.relative_to(REPO_ROOT)}"
    return ProxyConfig(source, directives, exposed)


# ---------------------------------------------------------------- the service's side
@dataclass(frozen=True)
class ServiceLimits:
    max_body_bytes: int  # the request guard's cap: upload cap + multipart slack
    max_header_bytes: int
    max_headers: int
    header_timeout_s: float
    body_timeout_s: float
    request_timeout_s: float  # BentoML traffic timeout
    upstream_keepalive_s: float  # uvicorn's idle keep-alive, as BentoML starts it
    api_paths: tuple[str, ...]
    open_paths: tuple[str, ...]
    ui_path: str


def _service_decorators(service_file: Path) -> tuple[float, tuple[str, ...], str]:
    """(traffic timeout, @bentoml.api method names, ASGI mount path) read from service.py
    without importing it (BentoML is heavy and reads decorators at import)."""
    tree = ast.parse(service_file.read_text(encoding="utf-8"))
    timeout, apis, mount = None, [], None
    for node in ast.walk(tree):
        if not isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for deco in node.decorator_list:
            call = deco if isinstance(deco, ast.Call) else None
            target = ast.unparse(call.func if call else deco)
            if target == "bentoml.service" and call is not None:
                for kw in call.keywords:
                    if kw.arg == "traffic":
                        timeout = ast.literal_eval(kw.value).get("timeout")
            elif target == "bentoml.asgi_app" and call is not None:
                mount = next(ast.literal_eval(k.value) for k in call.keywords if k.arg == "path")
            elif target == "bentoml.api" and not isinstance(node, ast.ClassDef):
                apis.append(node.name)
    if timeout is None or mount is None or not apis:
        raise ProxyConfigError(f"{service_file}: no traffic timeout, ASGI mount or API found")
    return float(timeout), tuple(apis), mount


def service_limits(serve: Any | None = None, service_file: Path = SERVICE_FILE) -> ServiceLimits:
    import uvicorn

    from dove_model.config import ServeParams
    from dove_model.serving import guard

    serve = serve or ServeParams()
    timeout, apis, mount = _service_decorators(service_file)
    keepalive = inspect.signature(uvicorn.Config).parameters["timeout_keep_alive"].default
    return ServiceLimits(
        max_body_bytes=serve.max_upload_bytes + guard.BODY_SLACK,
        max_header_bytes=serve.max_header_bytes,
        max_headers=serve.max_headers,
        header_timeout_s=serve.header_timeout_s,
        body_timeout_s=serve.body_timeout_s,
        request_timeout_s=timeout,
        upstream_keepalive_s=float(keepalive),
        api_paths=tuple(f"/{name}" for name in apis),
        open_paths=tuple(guard.OPEN_PATHS),
        ui_path=mount,
    )


# --------------------------------------------------------------------------- the check
def _routes(kind: str, pattern: str, path: str) -> bool:
    if kind == "Exact":
        return path == pattern
    if kind == "Prefix":
        prefix = pattern.rstrip("/")
        return path == prefix or path.startswith(prefix + "/") or prefix == ""
    if kind == "Regex":
        return re.search(pattern, path) is not None
    return True  # ImplementationSpecific: assume the worst


def check_directives(config: ProxyConfig, limits: ServiceLimits) -> list[str]:
    """Every way ``config`` disagrees with the service; empty when they agree."""
    d = config.directives
    problems: list[str] = []

    def need(name: str) -> str | None:
        if name not in d:
            problems.append(f"{config.source}: {name} is not set")
            return None
        return d[name]

    value = need("client_max_body_size")
    if value is not None and parse_size(value) != limits.max_body_bytes:
        problems.append(
            f"{config.source}: client_max_body_size {value} = {parse_size(value)} B, the "
            f"service accepts {limits.max_body_bytes} B (serve.max_upload_bytes + BODY_SLACK)"
        )
    if (value := need("large_client_header_buffers")) is not None:
        count, size = value.split()
        total = int(count) * parse_size(size)
        if total > limits.max_header_bytes or parse_size(size) < 1024:
            problems.append(
                f"{config.source}: large_client_header_buffers {value} ({total} B) must be at "
                f"most serve.max_header_bytes ({limits.max_header_bytes} B), 1k a buffer or more"
            )
        small = need("client_header_buffer_size")
        if small is not None and parse_size(small) > parse_size(size):
            problems.append(f"{config.source}: client_header_buffer_size > a large buffer")
    for name, ceiling, what in (
        ("client_header_timeout", limits.header_timeout_s, "serve.header_timeout_s"),
        ("client_body_timeout", limits.body_timeout_s, "serve.body_timeout_s"),
    ):
        if (value := need(name)) is not None and not 0 < parse_time(value) <= ceiling:
            problems.append(f"{config.source}: {name} {value} must be in (0, {what}={ceiling}]")
    value = need("keepalive_timeout")
    if value is not None and not 0 < parse_time(value.split()[0]) <= MAX_CLIENT_KEEPALIVE_S:
        problems.append(
            f"{config.source}: keepalive_timeout {value} must be in (0, "
            f"{MAX_CLIENT_KEEPALIVE_S:.0f}s]: idle clients must not hold connections"
        )
    value = need("upstream keepalive_timeout")
    if value is not None and not parse_time(value) < limits.upstream_keepalive_s:
        problems.append(
            f"{config.source}: upstream keepalive_timeout {value} must be shorter than the "
            f"service's keep-alive ({limits.upstream_keepalive_s:.0f}s), or NGINX reuses "
            "connections the service is closing (502s)"
        )
    if (value := need("proxy_read_timeout")) is not None:
        ceiling = limits.request_timeout_s + MAX_READ_TIMEOUT_MARGIN_S
        if not limits.request_timeout_s < parse_time(value) <= ceiling:
            problems.append(
                f"{config.source}: proxy_read_timeout {value} must be above the service's "
                f"request timeout ({limits.request_timeout_s:.0f}s, so its own 503/504 gets "
                f"through) and at most {ceiling:.0f}s"
            )
    if (value := need("proxy_request_buffering")) is not None and value != "on":
        problems.append(
            f"{config.source}: proxy_request_buffering must be on (slow uploads stay in NGINX)"
        )
    for path in limits.open_paths:
        if any(_routes(kind, pattern, path) for kind, pattern in config.exposed):
            problems.append(f"{config.source}: {path} is routed to the service; keep it internal")
    for path in (*limits.api_paths, limits.ui_path + "/"):
        if not any(_routes(kind, pattern, path) for kind, pattern in config.exposed):
            problems.append(f"{config.source}: {path} is not routed to the service")
    return problems


def check_all(limits: ServiceLimits | None = None) -> list[str]:
    limits = limits or service_limits()
    return [
        problem
        for config in (from_ingress_nginx(), from_nginx_conf())
        for problem in check_directives(config, limits)
    ]
