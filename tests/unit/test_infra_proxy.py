"""The proxy in front of the service: its limits are the service's, on both sides of a drift.

The ingress-nginx Ingress + controller values and the plain NGINX snippet are read back as
NGINX directives (infra/proxy.py) and checked against ServeParams, the request guard and
service.py; the controller values also pass a focused chart schema, and the Ingress the
core Kubernetes schema (strict).
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from dove_model.config import ServeParams
from infra import manifests, proxy
from infra.manifests import ManifestError, check_helm_values, validate_object
from infra.proxy import (
    ProxyConfig,
    ProxyConfigError,
    check_directives,
    parse_nginx,
    parse_size,
    parse_time,
    service_limits,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIGS = {"ingress-nginx": proxy.from_ingress_nginx, "nginx": proxy.from_nginx_conf}


@pytest.fixture(scope="module")
def limits() -> proxy.ServiceLimits:
    return service_limits()


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_the_proxy_enforces_the_services_limits(name: str, limits: proxy.ServiceLimits) -> None:
    config = CONFIGS[name]()
    assert check_directives(config, limits) == []
    d = config.directives
    assert parse_size(d["client_max_body_size"]) == ServeParams().max_upload_bytes + 64 * 1024
    count, size = d["large_client_header_buffers"].split()
    assert int(count) * parse_size(size) <= ServeParams().max_header_bytes
    assert parse_time(d["client_header_timeout"]) <= ServeParams().header_timeout_s
    assert parse_time(d["client_body_timeout"]) <= ServeParams().body_timeout_s
    assert parse_time(d["proxy_read_timeout"]) > limits.request_timeout_s
    assert d["proxy_request_buffering"] == "on"


def test_both_configurations_say_the_same(limits: proxy.ServiceLimits) -> None:
    ingress, nginx = proxy.from_ingress_nginx(), proxy.from_nginx_conf()
    for name in set(ingress.directives) & set(nginx.directives):
        left, right = ingress.directives[name], nginx.directives[name]
        if name.endswith("_timeout"):
            assert parse_time(left) == parse_time(right), name
        else:
            assert left == right, name


def test_the_service_side_is_read_from_the_service(limits: proxy.ServiceLimits) -> None:
    from dove_model.serving.guard import OPEN_PATHS

    assert limits.request_timeout_s == 60
    assert {"/search_images", "/search_texts", "/encode_texts", "/encode_images", "/info"} <= set(
        limits.api_paths
    )
    assert limits.ui_path == "/ui"
    assert "/metrics" in limits.open_paths and limits.open_paths == tuple(OPEN_PATHS)


def drifted(limits: proxy.ServiceLimits, **changes: Any) -> proxy.ServiceLimits:
    return dataclasses.replace(limits, **changes)


SERVICE_DRIFTS = {
    "a larger upload cap": ({"max_body_bytes": 20 * 1024 * 1024}, "client_max_body_size"),
    "a smaller upload cap": ({"max_body_bytes": 1024 * 1024}, "client_max_body_size"),
    "smaller header cap": ({"max_header_bytes": 8192}, "large_client_header_buffers"),
    "shorter header timeout": ({"header_timeout_s": 5.0}, "client_header_timeout"),
    "shorter body timeout": ({"body_timeout_s": 5.0}, "client_body_timeout"),
    "longer request timeout": ({"request_timeout_s": 120.0}, "proxy_read_timeout"),
    "shorter keep-alive": ({"upstream_keepalive_s": 2.0}, "upstream keepalive_timeout"),
    "a new API": ({"api_paths": ("/search_images", "/rerank")}, "/rerank is not routed"),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("drift", sorted(SERVICE_DRIFTS))
def test_a_service_side_drift_fails(name: str, drift: str, limits: proxy.ServiceLimits) -> None:
    changes, expected = SERVICE_DRIFTS[drift]
    problems = check_directives(CONFIGS[name](), drifted(limits, **changes))
    assert any(expected in p for p in problems), problems


def test_the_upload_cap_follows_params(limits: proxy.ServiceLimits) -> None:
    serve = ServeParams(max_upload_bytes=20 * 1024 * 1024)
    problems = check_directives(proxy.from_ingress_nginx(), service_limits(serve))
    assert any("client_max_body_size" in p for p in problems)


PROXY_DRIFTS = {
    "body cap": ("client_max_body_size", "10m"),
    "header buffers": ("large_client_header_buffers", "4 8k"),
    "header timeout": ("client_header_timeout", "60s"),
    "body timeout": ("client_body_timeout", "60s"),
    "client keep-alive": ("keepalive_timeout", "75s"),
    "upstream keep-alive": ("upstream keepalive_timeout", "60s"),
    "read timeout": ("proxy_read_timeout", "30s"),
    "request buffering": ("proxy_request_buffering", "off"),
}


@pytest.mark.parametrize("drift", sorted(PROXY_DRIFTS))
def test_a_proxy_side_drift_fails(drift: str, limits: proxy.ServiceLimits) -> None:
    name, value = PROXY_DRIFTS[drift]
    config = proxy.from_nginx_conf()
    broken = ProxyConfig(config.source, {**config.directives, name: value}, config.exposed)
    assert any(name in p for p in check_directives(broken, limits))
    missing = {k: v for k, v in config.directives.items() if k != name}
    unset = ProxyConfig(config.source, missing, config.exposed)
    assert any(f"{name} is not set" in p for p in check_directives(unset, limits))


@pytest.mark.parametrize(
    "route", [("Prefix", "/"), ("Exact", "/metrics"), ("Prefix", "/readyz"), ("Regex", "^/m")]
)
def test_routing_an_open_path_to_the_public_fails(
    route: tuple[str, str], limits: proxy.ServiceLimits
) -> None:
    config = proxy.from_ingress_nginx()
    broken = ProxyConfig(config.source, config.directives, [*config.exposed, route])
    assert any("keep it internal" in p for p in check_directives(broken, limits))


def test_the_ingress_routes_the_api_and_the_page_only(limits: proxy.ServiceLimits) -> None:
    ingress = yaml.safe_load(proxy.INGRESS.read_text(encoding="utf-8"))
    paths = [p for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
    assert {p["path"] for p in paths if p["pathType"] == "Exact"} == set(limits.api_paths)
    assert [p["path"] for p in paths if p["pathType"] != "Exact"] == [limits.ui_path]
    for path in paths:
        assert path["backend"]["service"] == {"name": "dove-retrieval", "port": {"name": "http"}}
    assert ingress["spec"]["ingressClassName"] == "nginx"


@pytest.mark.skipif(manifests.find_kubectl() is None, reason="kubectl is not installed")
def test_prod_renders_the_ingress_with_its_limits_host_and_tls(tmp_path: Path) -> None:
    infra_copy = manifests.with_throwaway_secrets(manifests.INFRA_DIR, tmp_path)
    prod = manifests.build(infra_copy / "k8s" / "overlays" / "prod")
    (ingress,) = [o for o in prod if o["kind"] == "Ingress"]
    validate_object(ingress)  # strict core schema
    component = yaml.safe_load(proxy.INGRESS.read_text(encoding="utf-8"))
    assert ingress["metadata"]["annotations"] == component["metadata"]["annotations"]
    host = ingress["spec"]["rules"][0]["host"]
    (tls,) = ingress["spec"]["tls"]
    assert tls["hosts"] == [host]
    guide = (REPO_ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    assert f"kubectl -n dove-ops create secret tls {tls['secretName']}" in guide
    services = {o["metadata"]["name"]: o for o in prod if o["kind"] == "Service"}
    assert "http" in {p["name"] for p in services["dove-retrieval"]["spec"]["ports"]}
    broken = copy.deepcopy(ingress)
    broken["spec"]["rules"][0]["http"]["paths"][0]["serviceName"] = "dove-retrieval"  # v1beta1
    with pytest.raises(ManifestError):
        validate_object(broken)


def test_controller_values_pass_the_focused_chart_schema() -> None:
    check_helm_values(
        manifests.INGRESS_NGINX_VALUES, schema_file=manifests.INGRESS_NGINX_VALUES_SCHEMA
    )


@pytest.mark.parametrize(
    "breakage",
    [
        lambda v: v["controller"]["config"].update({"client-header-timout": "10"}),  # typo
        lambda v: v["controller"]["config"].update({"keep-alive": 15}),  # not a string
        lambda v: v["controller"]["config"].update({"large-client-header-buffers": "4k"}),
        lambda v: v["controller"].update(allowSnippetAnnotations=True),
        lambda v: v["controller"]["config"].pop("client-body-timeout"),
    ],
)
def test_the_values_schema_rejects_a_broken_value(tmp_path: Path, breakage: Any) -> None:
    values = yaml.safe_load(manifests.INGRESS_NGINX_VALUES.read_text(encoding="utf-8"))
    breakage(values)
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    with pytest.raises(ManifestError):
        check_helm_values(path, schema_file=manifests.INGRESS_NGINX_VALUES_SCHEMA)


def test_the_nginx_reader() -> None:
    tree = parse_nginx('a 1; b "x y" z; blk q { c 2; } # note\n')
    parsed = [(d.name, d.args) for d in tree.block or []]
    assert parsed == [("a", ["1"]), ("b", ["x y", "z"]), ("blk", ["q"])]
    assert tree.find("blk")[0].find("c")[0].args == ["2"]
    for bad in ("a 1", "a { b 1; ", "}", "a 1; }", "{ b; }"):
        with pytest.raises(ProxyConfigError):
            parse_nginx(bad)
    assert parse_size("10304k") == 10304 * 1024 and parse_size("1m") == 1 << 20
    assert parse_time("65") == 65 and parse_time("4s") == 4 and parse_time("1m") == 60
    with pytest.raises(ProxyConfigError):
        parse_size("10 MB")


def test_the_offline_check_includes_the_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(proxy, "check_all", lambda: ["drift!"])
    with pytest.raises(ManifestError, match="drift!"):
        manifests.check_proxy_limits()
