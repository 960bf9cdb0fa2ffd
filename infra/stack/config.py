"""Where the stack keeps its state and which ports and options it runs with.

Nothing here touches the disk: :class:`Layout` only names the paths under the state folder,
:class:`StackOptions` holds what the command line asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dove_model.errors import DoveError

LOOPBACK = "127.0.0.1"
SERVICES = ("postgres", "mlflow", "airflow", "service")
# the port each service asks for first (PostgreSQL takes a free one: it is internal)
PREFERRED_PORTS = {"postgres": 0, "mlflow": 5000, "airflow": 8080, "service": 3000}
DAG_ID = "dove_retraining"
FEEDBACK_DAG_ID = "dove_feedback_signal"  # retraining on signal (docs/operations.md)
DAG_IDS = (DAG_ID, FEEDBACK_DAG_ID)  # what `up` waits for and unpauses
# one role of the same name owns each; querylog: the service's query log and feedback
DATABASES = ("mlflow", "mlflow_auth", "airflow", "querylog")


class StackError(DoveError):
    """Something of the stack cannot start or stop: one line, naming the log to read."""


@dataclass(frozen=True)
class Layout:
    """The files and folders under the state folder (default ``<project>/.stack``)."""

    root: Path

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def lock_file(self) -> Path:
        return self.root / ".lock"

    @property
    def credentials(self) -> Path:
        return self.root / "credentials"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def postgres(self) -> Path:
        return self.root / "postgres"

    @property
    def pgdata(self) -> Path:
        return self.postgres / "data"

    @property
    def pgpass(self) -> Path:
        return self.credentials / "pgpass"

    @property
    def mlflow(self) -> Path:
        return self.root / "mlflow"

    @property
    def artifacts(self) -> Path:
        return self.mlflow / "artifacts"

    @property
    def mlflow_auth_ini(self) -> Path:
        return self.mlflow / "basic_auth.ini"

    @property
    def airflow_home(self) -> Path:
        return self.root / "airflow"

    @property
    def bentoml_home(self) -> Path:
        return self.root / "bentoml"

    @property
    def container_home(self) -> Path:
        """HOME inside the stack's containers (the image's belongs to another uid)."""
        return self.root / "home"

    def credential(self, name: str) -> Path:
        """The JSON file of one account (``username``, ``password``)."""
        return self.credentials / f"{name}.json"

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"


@dataclass(frozen=True)
class StackOptions:
    """What ``dove stack up`` was asked for; ``None`` ports mean "as remembered, else the
    preferred one when free, else any free one"."""

    project: Path
    state_dir: Path
    params_file: Path
    dags_folder: Path
    ports: dict[str, int | None]
    pg_bindir: Path | None = None
    unpause: bool = True
    mlflow_workers: int = 1
    timeout_s: float = 180.0
    runtime: str = "auto"  # auto | containers | processes (infra/stack/containers.py)

    @property
    def layout(self) -> Layout:
        return Layout(self.state_dir)


def resolve_options(
    project: Path,
    state_dir: Path | None,
    params_file: Path | None,
    dags_folder: Path | None,
    **kwargs: object,
) -> StackOptions:
    """Absolute paths, defaults filled in from the project folder."""
    project = project.expanduser().resolve()
    return StackOptions(
        project=project,
        state_dir=(state_dir or project / ".stack").expanduser().resolve(),
        params_file=(project / (params_file or Path("params.yaml"))).resolve(),
        dags_folder=(dags_folder or project / "dags").expanduser().resolve(),
        **kwargs,  # type: ignore[arg-type]
    )
