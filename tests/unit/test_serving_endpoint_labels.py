"""Bounded ``endpoint`` labels: known paths keep their name, page routes their template."""

from __future__ import annotations

from dove_model.serving.metrics import UNMATCHED_PATH, EndpointLabels, bound_endpoint_labels

LABELS = EndpointLabels(
    exact=frozenset({"/search_images", "/ui/"}),
    templates={"/ui/thumbs/": "/ui/thumbs/{row}"},
)


def test_known_paths_keep_their_name() -> None:
    assert LABELS("/search_images") == "/search_images"
    assert LABELS("/ui/") == "/ui/"


def test_parametrised_paths_collapse_onto_their_template() -> None:
    assert {LABELS(f"/ui/thumbs/{row}") for row in range(1000)} == {"/ui/thumbs/{row}"}


def test_any_other_path_is_one_label() -> None:
    paths = ["/nope", "/search_images/x", "/%00", "/" + "a" * 5000, "/ui"]
    assert {LABELS(p) for p in paths} == {UNMATCHED_PATH}


def test_bentoml_metrics_middleware_can_be_bounded() -> None:
    """The hook finds BentoML's middleware (a BentoML upgrade that moves it fails here)."""
    from bentoml._internal.server.http.instruments import RunnerTrafficMetricsMiddleware

    assert bound_endpoint_labels(LABELS)
    assert RunnerTrafficMetricsMiddleware._dove_labels is LABELS
