"""A small client of Airflow 3's REST API (``/api/v2``) with a token from ``/auth/token``:
what ``dove stack`` and the tests use to unpause the DAG, trigger runs, send asset events
and wait for a run to finish."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from infra.stack.config import StackError

FINISHED = ("success", "failed")
DATA_ASSET = "dove-data-version"  # dags/dove_retraining.py: DATA_ASSET's name


@dataclass
class AirflowClient:
    url: str
    username: str
    password: str
    timeout: float = 30.0
    _token: str | None = field(default=None, repr=False)

    def token(self) -> str:
        """A JWT from ``POST /auth/token`` (fetched once, then reused)."""
        if self._token is None:
            response = httpx.post(
                f"{self.url}/auth/token",
                json={"username": self.username, "password": self.password},
                timeout=self.timeout,
            )
            if response.status_code not in (200, 201):
                raise StackError(f"Airflow refused the stack's account: {response.status_code}")
            self._token = str(response.json()["access_token"])
        return self._token

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """``method`` on ``/api/v2/<path>``; the JSON answer, or a StackError."""
        response = httpx.request(
            method,
            f"{self.url}/api/v2/{path.lstrip('/')}",
            headers={"Authorization": f"Bearer {self.token()}"},
            timeout=self.timeout,
            **kwargs,
        )
        if response.status_code >= 400:
            raise StackError(
                f"Airflow {method} /api/v2/{path}: {response.status_code} {response.text[:300]}"
            )
        return response.json() if response.content else None

    def dag(self, dag_id: str) -> dict[str, Any] | None:
        """The DAG as Airflow knows it (None: not parsed yet)."""
        try:
            return self.request("GET", f"dags/{dag_id}")
        except StackError as exc:
            if ": 404 " in str(exc):
                return None
            raise

    def import_errors(self) -> list[str]:
        found = self.request("GET", "importErrors").get("import_errors", [])
        return [f"{e.get('filename')}: {e.get('stack_trace', '')[-400:]}" for e in found]

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self.request("PATCH", f"dags/{dag_id}", json={"is_paused": paused})

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        """A manual run now (``logical_date: null``); returns its run id."""
        body = {"logical_date": None, "conf": conf or {}}
        return str(self.request("POST", f"dags/{dag_id}/dagRuns", json=body)["dag_run_id"])

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.request("GET", f"dags/{dag_id}/dagRuns/{run_id}")

    def runs(self, dag_id: str, **query: str) -> list[dict[str, Any]]:
        found = self.request("GET", f"dags/{dag_id}/dagRuns", params=query)
        return list(found.get("dag_runs", []))

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        found = self.request("GET", f"dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        return {t["task_id"]: t.get("state") for t in found.get("task_instances", [])}

    def asset_id(self, name: str = DATA_ASSET) -> int:
        found = self.request("GET", "assets", params={"name_pattern": name})
        matches = [a for a in found.get("assets", []) if a.get("name") == name]
        if not matches:
            raise StackError(f"Airflow knows no asset named {name!r} (is the DAG parsed?)")
        return int(matches[0]["id"])

    def asset_event(self, name: str = DATA_ASSET, extra: dict[str, Any] | None = None) -> str:
        """``POST /api/v2/assets/events``; returns the event's timestamp."""
        body = {"asset_id": self.asset_id(name), "extra": extra or {}}
        return str(self.request("POST", "assets/events", json=body)["timestamp"])

    def wait_for_dag(self, dag_id: str, timeout: float) -> dict[str, Any]:
        """Poll until the DAG processor has parsed ``dag_id``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.dag(dag_id)
            if found is not None:
                return found
            time.sleep(2)
        errors = "; ".join(self.import_errors()) or "no import error reported"
        raise StackError(f"Airflow did not list DAG {dag_id} after {timeout:.0f} s ({errors})")

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float) -> dict[str, Any]:
        """Poll the run until it succeeds or fails (or ``timeout`` passes: a StackError)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.run(dag_id, run_id)
            if found.get("state") in FINISHED:
                return found
            if time.monotonic() > deadline:
                raise StackError(f"run {run_id} still {found.get('state')} after {timeout:.0f} s")
            time.sleep(5)

    def run_ids(self, dag_id: str, run_type: str = "asset_triggered") -> set[str]:
        return {str(r["dag_run_id"]) for r in self.runs(dag_id, run_type=run_type, limit="100")}

    def wait_for_new_run(
        self, dag_id: str, known: set[str], timeout: float, run_type: str = "asset_triggered"
    ) -> str:
        """The id of a run of ``run_type`` that is not in ``known`` (ids seen before)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            new = self.run_ids(dag_id, run_type) - known
            if new:
                return sorted(new)[0]
            time.sleep(3)
        raise StackError(f"no new {run_type} run of {dag_id} within {timeout:.0f} s")
