"""``up`` and ``down``: start what is not running, in order (PostgreSQL, MLflow, Airflow,
the service), reuse what is; stop everything in the reverse order.

Every process runs detached (its own session) and survives the command; the state file
records each one (pid and start time) and is rewritten atomically after every change. A
lock file keeps two ``up``/``down`` from interleaving.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock

from dove_model.config import Params
from infra.stack import (
    airflow,
    containers,
    mlflow,
    postgres,
    postgres_container,
    processes,
    service,
)
from infra.stack.airflow_api import AirflowClient
from infra.stack.config import DAG_IDS, DATABASES, Layout, StackError, StackOptions
from infra.stack.credentials import Account, ensure_all, ensure_keys, write_pgpass
from infra.stack.environment import base_env, mlflow_client_env, query_log_env
from infra.stack.ports import check_free, choose_ports
from infra.stack.progress import Reporter, wait_until
from infra.stack.state import ProcessRecord, State, load_state, save_state

# stopped in this order (the scheduler first: it starts no task while the rest stops)
STOP_ORDER = ("service", "airflow-scheduler", "airflow-dag-processor", "airflow-api-server")
STOP_ORDER += ("mlflow", "postgres")  # postgres: its container (a host cluster: pg_ctl)
OWN_ENTRIES = {"state.json", ".lock", "credentials", "logs", "postgres", "mlflow", "airflow"}
OWN_ENTRIES |= {"bentoml", "home"}
NO_CHAMPION = (
    "not deployed: the registry has no @champion yet. Trigger a retraining "
    "(`dove stack trigger`), then run `dove stack up` again"
)


@dataclass
class Context:
    options: StackOptions
    state: State
    params: Params
    accounts: dict[str, Account] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    engine: Any = None  # the container engine (containers runtime only)

    @property
    def layout(self) -> Layout:
        return self.options.layout

    def port(self, name: str) -> int:
        return self.state.ports[name]

    def save(self) -> None:
        save_state(self.layout.state_file, self.state)

    def alive(self, name: str) -> bool:
        return processes.is_alive(self.state.processes.get(name))


def prepare_dirs(layout: Layout) -> None:
    """The state folder (searchable by PostgreSQL's user when we are root, else private). An
    existing folder must be a stack's or empty: its mode is changed."""
    root = layout.root
    entries = [p.name for p in root.iterdir()] if root.is_dir() else []
    foreign = [n for n in entries if n not in OWN_ENTRIES and not n.startswith(".state.json.")]
    if foreign:
        raise StackError(f"{root} holds other files ({foreign[0]}, ...): pass a new --state-dir")
    mode = 0o711 if postgres.as_root() else 0o700
    for folder in (root, layout.logs, layout.postgres):
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, mode)


def _context(options: StackOptions) -> Context:
    from dove_model.config import load_params

    layout = options.layout
    state = load_state(layout.state_file)
    params = load_params(options.params_file)
    if not options.dags_folder.is_dir():
        raise StackError(f"DAGs folder {options.dags_folder} not found: pass --dags-folder")
    if options.pg_bindir is not None:  # asked for host binaries: a wrong folder fails first
        postgres.find_bindir(options.pg_bindir)
    state.project, state.params_file = str(options.project), str(options.params_file)
    state.dags_folder = str(options.dags_folder)
    context = Context(options, state, params)
    running = {n for n in ("mlflow", "service", "postgres") if context.alive(n)}
    running |= {"airflow"} if context.alive("airflow-api-server") else set()
    running |= {"postgres"} if postgres.postmaster_pid(layout) else set()
    state.ports = choose_ports(options.ports, state.ports, running)
    context.accounts, context.keys = ensure_all(layout), ensure_keys(layout)
    context.env = base_env()
    return context


def _runtime_up(context: Context, reporter: Reporter) -> None:
    """Choose the runtime; for containers, (re)build the pipeline image from the checkout."""
    options, state = context.options, context.state
    live = [name for name in state.processes if context.alive(name)]
    host_cluster = postgres.postmaster_pid(context.layout) is not None
    previous = state.runtime if live or host_cluster else ""
    with reporter.step("runtime", "choosing processes or containers") as said:
        wants_containers = previous == "containers" or (
            not previous and options.runtime != "processes"
        )
        engine = containers.find_runner(options.runtime) if wants_containers else None
        image = context.params.pipeline.image
        # auto never makes the image from nothing (minutes, GBs): it rebuilds one that exists
        found = engine is not None and (options.runtime != "auto" or engine.image_exists(image))
        log = context.layout.log("image")
        built = (
            found
            and containers.build_image(engine, "pipeline", image, log)
            and containers.build_image(engine, "postgres", postgres_container.image(), log)
        )
        state.runtime = containers.choose_runtime(
            options.runtime, engine is not None, built, previous
        )
        context.engine = engine if state.runtime == "containers" else None
        if context.engine is not None:
            context.layout.container_home.mkdir(mode=0o700, exist_ok=True)
            said.append(
                f"containers ({engine.name}, {image} built from the checkout, "
                f"{postgres_container.image()})"
            )
        else:
            said.append("processes")
        context.save()


def up(options: StackOptions, reporter: Reporter) -> State:
    """Bring up whatever is not running; returns the saved state."""
    prepare_dirs(options.layout)
    with FileLock(str(options.layout.lock_file)):
        context = _context(options)
        context.save()
        _runtime_up(context, reporter)
        _postgres_up(context, reporter)
        _mlflow_up(context, reporter)
        _airflow_up(context, reporter)
        _service_up(context, reporter)
        context.save()
        return context.state


def _postgres_up(context: Context, reporter: Reporter) -> None:
    """The cluster: a container of the PostgreSQL image, or the host's binaries; then each
    database with its owner role."""
    port = context.port("postgres")
    with reporter.step("postgres", "starting PostgreSQL") as said:
        superuser = context.accounts["postgres"]
        if context.engine is not None:
            _postgres_container_up(context, superuser, said)
        else:
            _postgres_host_up(context, superuser, said)
        write_pgpass(context.layout, port, context.accounts)
        owners = {name: context.accounts[f"db-{name}"] for name in DATABASES}
        postgres.ensure_databases(port, superuser, owners)
        said.append(f"on 127.0.0.1:{port}")


def _postgres_host_up(context: Context, superuser: Account, said: list[str]) -> None:
    layout, port, log = context.layout, context.port("postgres"), context.layout.log("postgres")
    bindir = postgres.choose_bindir(context.options.pg_bindir, context.state.pg_bindir)
    server = postgres.host_server(bindir)
    context.state.pg_bindir = str(bindir)
    postgres.check_reachable(layout)
    postgres.prepare_log(log, server.owner)
    if postgres.initdb(layout, server, superuser, log):
        said.append("cluster created,")
    postgres.check_version(layout, server)
    if postgres.postmaster_pid(layout) is None:
        check_free("postgres", port)
        postgres.start(layout, server, port, log)
        said.append("started")
    else:
        said.append("already running")
    wait_until(
        lambda: postgres.is_ready(bindir, port),
        what="PostgreSQL", timeout=context.options.timeout_s, log=str(log), interval=1,
    )  # fmt: skip


def _postgres_container_up(context: Context, superuser: Account, said: list[str]) -> None:
    """initdb and the version check in one-shot containers, the server in a named one."""
    engine, layout, port = context.engine, context.layout, context.port("postgres")
    log = layout.log("postgres")
    owner = postgres_container.cluster_owner(layout)
    if postgres.initdb(layout, postgres_container.one_shot_server(engine, layout, owner),
                       superuser, log):  # fmt: skip
        said.append("cluster created,")
        owner = postgres_container.cluster_owner(layout)
    postgres.check_version(layout, postgres_container.one_shot_server(engine, layout, owner))
    if not context.alive("postgres"):
        check_free("postgres", port)
        postgres.write_conf(layout.pgdata, port, owner)
        name = containers.container_name(layout, "postgres")
        containers.remove(engine, name, stop_timeout=5)
        command = postgres_container.server_command(engine, name, layout, owner)
        context.state.processes["postgres"] = processes.spawn(
            "postgres", command, log=log, cwd=layout.postgres, env=engine.environ()
        )
        context.state.containers["postgres"] = name
        context.save()
        said.append("started in a container")
    else:
        said.append("already running")
    wait_until(
        lambda: postgres.accepts_logins(port, superuser), what="PostgreSQL",
        timeout=context.options.timeout_s, log=str(log), interval=1,
        watch=[context.state.processes["postgres"]],
    )  # fmt: skip


def _start(context: Context, name: str, command: list[str], cwd: Path, env: dict) -> ProcessRecord:
    """Spawn ``command`` as a process, or in a container (the runtime's): recorded either way."""
    log = context.layout.log(name)
    context.state.containers.pop(name, None)
    if context.engine is not None and name in containers.CONTAINED:
        command, env = _in_container(context, name, command, cwd, env)
    record = processes.spawn(name, command, log=log, cwd=cwd, env=env)
    context.state.processes[name] = record
    context.save()
    return record


def _in_container(
    context: Context, name: str, command: list[str], cwd: Path, env: dict
) -> tuple[list[str], dict[str, str]]:
    """The engine's ``run`` of ``command`` and the client's environment (a stale container of
    the same name is removed first)."""
    from dove_model.serving.launch import PROJECT_ROOT

    engine, options, layout = context.engine, context.options, context.layout
    cname = containers.container_name(layout, name)
    containers.remove(engine, cname, stop_timeout=5)
    inside = containers.container_env(env, layout.container_home)
    volumes = [options.project, layout.root, options.dags_folder, options.params_file.parent]
    run = containers.run_command(
        engine.binary, engine.name, cname, context.params.pipeline.image, command,
        env_names=inside, volumes=[*volumes, PROJECT_ROOT], cwd=cwd,
    )  # fmt: skip
    context.state.containers[name] = cname
    return run, engine.environ() | inside


def _mlflow_up(context: Context, reporter: Reporter) -> None:
    layout, port, options = context.layout, context.port("mlflow"), context.options
    admin = context.accounts["mlflow"]
    with reporter.step("mlflow", "starting the MLflow server") as said:
        mlflow.write_auth_ini(layout, context.port("postgres"))
        record = context.state.processes.get("mlflow")
        if not context.alive("mlflow"):
            check_free("mlflow", port)
            env = context.env | mlflow.server_env(layout, admin, context.keys["mlflow_flask"])
            command = mlflow.command(port, context.port("postgres"), layout, options.mlflow_workers)
            record = _start(context, "mlflow", command, layout.mlflow, env)
            said.append("started")
        else:
            said.append("already running")
        wait_until(
            lambda: mlflow.is_healthy(port),
            what="MLflow", timeout=options.timeout_s, log=str(layout.log("mlflow")), watch=[record],
        )  # fmt: skip
        _mlflow_accounts(context)
        said.append(f"on {mlflow.url(port)}")


def _mlflow_accounts(context: Context) -> None:
    """The pipeline and reader accounts, granted on the project's model (once per model)."""
    register = context.params.register_
    wanted = f"{register.model_name}|{register.experiment}"
    if context.state.marks.get("mlflow_accounts") == wanted:
        return
    log = context.layout.log("mlflow-accounts")
    port = context.port("mlflow")
    mlflow.ensure_accounts(
        port, context.accounts, register.model_name, register.experiment, context.env, log
    )
    context.state.marks["mlflow_accounts"] = wanted
    context.save()


def airflow_env(context: Context) -> dict[str, str]:
    """The Airflow processes' environment, which their task processes inherit: the stack's
    MLflow (the pipeline account) and BentoML store."""
    pipeline = context.accounts["mlflow-pipeline"]
    client = mlflow_client_env(mlflow.url(context.port("mlflow")), *pipeline.__dict__.values())
    extra = {"BENTOML_HOME": str(context.layout.bentoml_home)}
    extra |= query_log_env(context.port("postgres"), context.layout.pgpass)
    return context.env | airflow.process_env(context.layout) | client | extra


def _airflow_up(context: Context, reporter: Reporter) -> None:
    layout, options, port = context.layout, context.options, context.port("airflow")
    with reporter.step("airflow", "starting Airflow") as said:
        airflow.write_config(
            layout, port, context.port("postgres"), options.dags_folder, context.keys,
            context.accounts["airflow"],
        )  # fmt: skip
        env = airflow_env(context)
        missing = [c for c in airflow.COMPONENTS if not context.alive(f"airflow-{c}")]
        if missing:
            _airflow_migrate(context, env)
        if "api-server" in missing:
            check_free("airflow", port)
        for component in missing:
            _start(
                context,
                f"airflow-{component}",
                airflow.command(component),
                layout.airflow_home,
                env,
            )
        said.append(f"started {', '.join(missing)}" if missing else "already running")
        wait_until(
            lambda: airflow.is_healthy(port), what="Airflow", timeout=options.timeout_s,
            log=str(layout.logs / "airflow-*.log"), watch=_airflow_records(context),
        )  # fmt: skip
        said.append(_dag_ready(context))
        said.append(f"on {airflow.url(port)}")


def _airflow_records(context: Context) -> list[ProcessRecord | None]:
    return [context.state.processes.get(f"airflow-{c}") for c in airflow.COMPONENTS]


def _airflow_migrate(context: Context, env: dict[str, str]) -> None:
    from importlib.metadata import version

    wanted = f"airflow {version('apache-airflow')} on port {context.port('postgres')}"
    if context.state.marks.get("airflow_db") == wanted:
        return
    airflow.migrate(env, context.layout.log("airflow-migrate"), context.layout.airflow_home)
    context.state.marks["airflow_db"] = wanted
    context.save()


def _dag_ready(context: Context) -> str:
    """Wait until the DAGs are parsed; unpause them unless asked not to."""
    account = context.accounts["airflow"]
    client = AirflowClient(airflow.url(context.port("airflow")), account.username, account.password)
    said = []
    for dag_id in DAG_IDS:
        dag = client.wait_for_dag(dag_id, context.options.timeout_s)
        if context.options.unpause and dag.get("is_paused"):
            client.set_paused(dag_id, False)
            said.append(f"{dag_id} unpaused")
        else:
            said.append(f"{dag_id} {'paused' if dag.get('is_paused') else 'active'}")
    if any(part.endswith("unpaused") for part in said):
        said[-1] += " (Airflow runs each one's latest slot now: catchup=False)"
    return ", ".join(said) + ","


def _service_up(context: Context, reporter: Reporter) -> None:
    """Serve ``@champion``: roll the index out to it when another model built it (a running
    service then swaps model and index live: it is never restarted for a new champion), and
    start the service when none runs."""
    layout, port = context.layout, context.port("service")
    with reporter.step("service", "starting the retrieval service") as said:
        reader = context.accounts["mlflow-reader"]
        model = context.params.register_.model_name
        champion = mlflow.champion_version(context.port("mlflow"), reader, model)
        if champion is None:
            context.state.service_note = NO_CHAMPION
            context.save()
            said.append(NO_CHAMPION)
            return
        running = context.alive("service")
        rolled = _roll_out(context, champion)
        if not running:
            _serve(context)
        wait_until(
            lambda: service.is_ready(port), what="the service", timeout=context.options.timeout_s,
            log=str(layout.log("service")), watch=[context.state.processes["service"]],
        )  # fmt: skip
        _wait_for_champion(context, champion)
        context.state.service_note = f"serving @champion v{champion}"
        context.save()
        if not running:
            said.append("started,")
        elif rolled:
            said.append("already running, swapped live (no restart) to the rolled-out index,")
        else:
            said.append("already running,")
        said.append(f"serving @champion v{champion} on {service.url(port)}")


def _index_root(context: Context) -> Path:
    return (context.options.project / context.params.index.out_dir).resolve()


def _roll_out(context: Context, champion: str) -> bool:
    """``dove deploy`` (the reader account, the stack's store) unless the current index
    version was built by the champion and its model is in the store; True when it ran."""
    layout, options = context.layout, context.options
    indexed = service.indexed_model(_index_root(context))
    if indexed.get("model_version") == champion and service.in_store(
        layout.bentoml_home, indexed.get("tag")
    ):
        return False
    reader = context.accounts["mlflow-reader"]
    client = mlflow_client_env(mlflow.url(context.port("mlflow")), *reader.__dict__.values())
    env = context.env | client | {"BENTOML_HOME": str(layout.bentoml_home)}
    service.deploy(options.project, options.params_file, env, layout.log("deploy"))
    return True


def _serve(context: Context) -> None:
    """Start ``bentoml serve`` with the model the current index version names."""
    layout, options = context.layout, context.options
    check_free("service", context.port("service"))
    command, cwd = service.command(context.port("service"))
    index_root = _index_root(context)
    tag = service.indexed_model(index_root).get("tag") or context.params.serve.model_tag
    base = context.env | query_log_env(context.port("postgres"), layout.pgpass)
    serve_env = service.serve_env(base, layout, options.params_file, index_root, tag)
    _start(context, "service", command, cwd, serve_env)


def _wait_for_champion(context: Context, champion: str) -> None:
    """Until ``/info`` names the champion: at once after a start, within the service's index
    poll (``serve.index_poll_s``) plus a model load after a roll-out to a running service."""
    port, log = context.port("service"), context.layout.log("service")
    seen: dict[str, Any] = {}

    def serving_champion() -> bool:
        seen.update(service.served(port) or {})
        return seen.get("model_version") == champion

    try:
        wait_until(
            serving_champion, what=f"the service to serve @champion v{champion}",
            timeout=context.options.timeout_s, log=str(log),
            watch=[context.state.processes["service"]],
        )  # fmt: skip
    except StackError as exc:
        refused = seen.get("index_refused")
        raise StackError(f"{exc} (index refused: {refused})" if refused else str(exc)) from None


def down(layout: Layout, reporter: Reporter) -> list[str]:
    """Stop every process of the stack, then PostgreSQL; returns what was stopped."""
    if not layout.state_file.is_file():
        return []
    with FileLock(str(layout.lock_file)):
        state = load_state(layout.state_file)
        engine = containers.find_runner("containers") if state.containers else None
        if state.containers and engine is None:
            raise StackError(f"the stack's containers {sorted(state.containers.values())} "
                             "need their engine to stop, and none answers")  # fmt: skip
        stopped = [n for n in STOP_ORDER if _stop_one(layout, state, n, reporter, engine)]
        if _stop_postgres(layout, state, reporter):
            stopped.append("postgres")
        state.runtime = ""
        save_state(layout.state_file, state)
        return stopped


def _stop_one(layout: Layout, state: State, name: str, reporter: Reporter, engine: Any) -> bool:
    """Stop one service: its container by name (then the engine's client), or its process."""
    record = state.processes.get(name)
    if record is None and name not in state.containers:
        return False
    with reporter.step(name, "stopping") as said:
        if name in state.containers:
            containers.remove(engine, state.containers[name])
        left = processes.stop(record) if record is not None else []
        if left:
            raise StackError(f"{name}: processes {left} survived SIGKILL")
        state.processes.pop(name, None)
        state.containers.pop(name, None)
        save_state(layout.state_file, state)
        said.append("stopped")
    return True


def _stop_postgres(layout: Layout, state: State, reporter: Reporter) -> bool:
    """The host's cluster (a container of it is stopped with the other containers)."""
    if postgres.postmaster_pid(layout) is None:
        return False
    with reporter.step("postgres", "pg_ctl stop -m fast") as said:
        server = postgres.host_server(postgres.choose_bindir(None, state.pg_bindir))
        postgres.stop(layout, server, layout.log("postgres"))
        said.append("stopped")
    return True
