"""Who may talk to whom under a set of NetworkPolicies, evaluated offline.

A small, literal reading of the ``networking.k8s.io/v1`` semantics, enough to test the
rendered policies of ``infra/k8s`` as a connection matrix instead of as YAML:

- a pod is isolated for ingress (egress) when some policy in its namespace selects it with
  ``Ingress`` (``Egress``) among its ``policyTypes``; an isolated pod accepts (opens) only
  what one of those policies' rules allows, and policies add up;
- a connection happens when the source's egress allows it *and* the destination's ingress
  does; namespaces without policies (here: everything but the one rendered) allow all;
- peers: ``podSelector`` (same namespace as the policy), ``namespaceSelector`` (namespaces
  by label; every namespace carries ``kubernetes.io/metadata.name``), both (AND);
  ``ipBlock`` never matches a pod here; ports by number (named ports are refused, so that
  a rule cannot silently miss a renamed container port).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

K8sObject = dict[str, Any]
NAMESPACE_LABEL = "kubernetes.io/metadata.name"


@dataclass(frozen=True)
class Pod:
    namespace: str
    labels: Mapping[str, str]
    name: str = ""
    namespace_labels: Mapping[str, str] = field(default_factory=dict)

    def ns_labels(self) -> dict[str, str]:
        return {NAMESPACE_LABEL: self.namespace, **self.namespace_labels}

    def __str__(self) -> str:
        return self.name or f"{self.namespace}/{dict(self.labels)}"


def matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A LabelSelector against labels (an empty selector matches everything)."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, operator, values = expr["key"], expr["operator"], expr.get("values") or []
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
        if operator not in {"In", "NotIn", "Exists", "DoesNotExist"}:
            raise ValueError(f"unknown selector operator {operator!r}")
    return True


def _peer_matches(peer: Mapping[str, Any], policy_namespace: str, pod: Pod) -> bool:
    if "ipBlock" in peer:
        return False
    pod_selector = peer.get("podSelector")
    ns_selector = peer.get("namespaceSelector")
    if ns_selector is None:
        in_namespace = pod.namespace == policy_namespace
    else:
        in_namespace = matches(ns_selector, pod.ns_labels())
    return in_namespace and (pod_selector is None or matches(pod_selector, pod.labels))


def _port_matches(ports: list[Mapping[str, Any]] | None, port: int, protocol: str) -> bool:
    if not ports:
        return True
    for entry in ports:
        number = entry.get("port")
        if number is not None and not isinstance(number, int):
            raise ValueError(f"named port {number!r}: use the number")
        if entry.get("protocol", "TCP") != protocol:
            continue
        end = entry.get("endPort", number)
        if number is None or number <= port <= end:
            return True
    return False


@dataclass(frozen=True)
class Policies:
    """The NetworkPolicies of one or more namespaces."""

    items: tuple[K8sObject, ...]

    @classmethod
    def of(cls, objects: Iterable[K8sObject]) -> Policies:
        return cls(tuple(o for o in objects if o.get("kind") == "NetworkPolicy"))

    def selecting(self, pod: Pod, direction: str) -> list[K8sObject]:
        """Policies that select ``pod`` for ``Ingress`` or ``Egress``."""
        found = []
        for policy in self.items:
            spec = policy["spec"]
            if policy["metadata"].get("namespace") != pod.namespace:
                continue
            types = spec.get("policyTypes") or (
                ["Ingress", "Egress"] if "egress" in spec else ["Ingress"]
            )
            if direction in types and matches(spec.get("podSelector", {}), pod.labels):
                found.append(policy)
        return found

    def _allows(self, subject: Pod, peer: Pod, port: int, protocol: str, direction: str) -> bool:
        selecting = self.selecting(subject, direction)
        if not selecting:
            return True  # not isolated in that direction
        rules_key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
        for policy in selecting:
            namespace = policy["metadata"]["namespace"]
            for rule in policy["spec"].get(rules_key) or []:
                peers = rule.get(peers_key)
                peer_ok = not peers or any(_peer_matches(p, namespace, peer) for p in peers)
                if peer_ok and _port_matches(rule.get("ports"), port, protocol):
                    return True
        return False

    def allowed(self, source: Pod, destination: Pod, port: int, protocol: str = "TCP") -> bool:
        """Whether ``source`` can open a connection to ``destination:port``."""
        return self._allows(source, destination, port, protocol, "Egress") and self._allows(
            destination, source, port, protocol, "Ingress"
        )


def workload_pods(objects: Iterable[K8sObject]) -> list[Pod]:
    """One Pod per workload template (Deployment, StatefulSet, Job, PyTorchJob replicas)."""
    pods = []
    for obj in objects:
        kind, meta = obj.get("kind"), obj.get("metadata", {})
        namespace, name = meta.get("namespace", "default"), f"{obj.get('kind')}/{meta.get('name')}"
        if kind in {"Deployment", "StatefulSet", "Job"}:
            labels = obj["spec"]["template"]["metadata"].get("labels", {})
            pods.append(Pod(namespace, labels, name))
        elif kind == "PyTorchJob":
            for role, replica in obj["spec"]["pytorchReplicaSpecs"].items():
                labels = replica["template"]["metadata"].get("labels", {})
                pods.append(Pod(namespace, labels, f"{name}/{role}"))
    return pods
