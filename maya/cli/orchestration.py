"""``maya serve``, ``maya deploy``, ``maya run``, and the Prefect API of commands that run a flow.

Deployments (names are an interface: ``prefect deployment run evaluate/evaluate-on-demand`` works):

* ``evaluate/evaluate-on-demand`` -- the study, run when triggered (``maya run evaluate --param dataset=demo``);
* ``dedup/dedup-nightly`` -- dedup of the configured folders every night (cron, default 02:00 UTC).

``maya serve`` registers both with the server named by ``PREFECT_API_URL`` and runs their flow runs in
this process's children until stopped (the simplest setup: one process, no work pool). ``maya deploy``
registers them on a process work pool instead, for ``prefect worker start --pool maya`` to run.
``deployments/prefect.yaml`` describes the same two deployments for ``prefect deploy``.

Prefect is imported inside functions only: ``maya --help`` stays fast.
"""

from __future__ import annotations

from maya.errors import MayaUsageError

import argparse
import json
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

#: Project root: the folder that holds flows/ (entrypoints of the deployments are relative to it).
def _flows_folder() -> Path:
    """The folder of maya.flows (the repository's flows/ in a checkout, maya/flows in a wheel), found
    without importing the flows (Prefect)."""
    import importlib.util

    return Path(importlib.util.find_spec("maya.flows").submodule_search_locations[0]).resolve()


#: The folder a worker runs flows from: deployment entrypoints (``flows/evaluate.py:evaluate``) are relative to it.
PROJECT_ROOT = _flows_folder().parent
FLOWS = _flows_folder().name

EVALUATE_DEPLOYMENT = "evaluate/evaluate-on-demand"
DEDUP_DEPLOYMENT = "dedup/dedup-nightly"
DEPLOYMENTS = {"evaluate": EVALUATE_DEPLOYMENT, "dedup": DEDUP_DEPLOYMENT}

#: When the nightly dedup runs unless told otherwise (env MAYA_DEDUP_CRON, MAYA_DEDUP_TIMEZONE).
DEFAULT_DEDUP_CRON = "0 2 * * *"
DEFAULT_TIMEZONE = "UTC"
DEFAULT_WORK_POOL = "maya"


class OrchestrationError(MayaUsageError):
    """A setup problem the user can fix (no server configured, unknown deployment): exit 2, one line."""


# ---------------------------------------------------------------------------------------------- definitions


@dataclass(frozen=True)
class DeploymentSpec:
    """One deployment, as plain data (no Prefect objects): what serve, deploy and the tests share."""

    flow_name: str  # the @flow's name
    name: str  # the deployment's name
    entrypoint: str  # "path/relative/to/project.py:function"
    parameters: dict = field(default_factory=dict)
    cron: str | None = None
    timezone: str = DEFAULT_TIMEZONE
    paused: bool = False
    description: str = ""
    tags: tuple[str, ...] = ("maya",)

    @property
    def full_name(self) -> str:
        return f"{self.flow_name}/{self.name}"


def dedup_folders_from_env(env=None) -> list[str]:
    """Folders of the nightly dedup from ``MAYA_DEDUP_FOLDERS`` (``os.pathsep``-separated)."""
    raw = (env if env is not None else os.environ).get("MAYA_DEDUP_FOLDERS", "")
    return [p for p in raw.split(os.pathsep) if p.strip()]


def deployment_specs(*, data_dir: str | Path, dedup_folders: list[str] | None = None, model: str | None = None,
                     cron: str | None = None, timezone: str | None = None) -> list[DeploymentSpec]:
    """The two deployments of Maya for a data folder.

    ``data_dir`` becomes a parameter of both (absolute), so scheduled runs write the database the
    user's ``maya sql`` reads. ``dedup_folders``: what the nightly dedup scans; with none, the nightly
    deployment is registered paused (run it by hand with ``--param paths=[...]``, or set folders and
    deploy again). ``model``: the embedding model of both (None: the serving process's MAYA_MODEL).
    """
    data_dir = str(Path(data_dir).expanduser().resolve())
    folders = [str(Path(p).expanduser().resolve()) for p in (dedup_folders or [])]
    common = {"data_dir": data_dir, **({"model": model} if model else {})}
    reports = Path(data_dir) / "reports"
    return [
        DeploymentSpec(
            flow_name="evaluate", name="evaluate-on-demand", entrypoint=f"{FLOWS}/evaluate.py:evaluate",
            parameters={"dataset": "demo", **common},
            description="Score a dataset's labelled pairs with pHash and the embedding model; P/R/F1 per "
                        "method into DuckDB. Parameters: dataset, source (folder of originals: build pairs "
                        "first), seed, model, data_dir, refresh, dask_address, ..."),
        DeploymentSpec(
            flow_name="dedup", name="dedup-nightly", entrypoint=f"{FLOWS}/dedup.py:dedup",
            parameters={"paths": folders, "mode": "hybrid", **common,
                        "json_path": str(reports / "dedup-nightly.json"),
                        "html_path": str(reports / "dedup-nightly.html")},
            cron=cron or os.environ.get("MAYA_DEDUP_CRON") or DEFAULT_DEDUP_CRON,
            timezone=timezone or os.environ.get("MAYA_DEDUP_TIMEZONE") or DEFAULT_TIMEZONE,
            paused=not folders,
            description="Find the near-duplicate groups under the configured folders (parameter paths); "
                        "report as JSON and HTML under <data_dir>/reports; nothing is moved or deleted."),
    ]


def _load_flow(spec: DeploymentSpec):
    import importlib

    module_path, func = spec.entrypoint.split(":")
    module = importlib.import_module(module_path.removesuffix(".py").replace("/", "."))
    return getattr(module, func)


def _schedules(spec: DeploymentSpec):
    if not spec.cron:
        return None
    from prefect.schedules import Cron

    return [Cron(spec.cron, timezone=spec.timezone)]


def runner_deployments(specs: list[DeploymentSpec]):
    """Prefect RunnerDeployments (for ``prefect.serve``) of ``specs``.

    One run at a time per deployment: DuckDB allows one writer, so a second trigger waits its turn
    instead of failing on the database lock.
    """
    return [
        _load_flow(s).to_deployment(
            name=s.name, parameters=s.parameters, schedules=_schedules(s), paused=s.paused,
            description=s.description, tags=list(s.tags), concurrency_limit=1)
        for s in specs
    ]


def require_api_url() -> str:
    """The configured Prefect API URL; OrchestrationError when there is none (ephemeral mode)."""
    import urllib.error
    import urllib.request

    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if not url:
        raise OrchestrationError(
            "no Prefect server configured: start one with `prefect server start` and "
            "`export PREFECT_API_URL=http://127.0.0.1:4200/api` (or point PREFECT_API_URL at your server)")
    try:
        with urllib.request.urlopen(f"{str(url).rstrip('/')}/health", timeout=5):
            pass
    except (urllib.error.URLError, OSError) as e:
        raise OrchestrationError(f"the Prefect server at {url} does not answer ({getattr(e, 'reason', e)}); "
                                 f"is it running?") from None
    return str(url)


def forget_deployments_of_other_kind(specs: list[DeploymentSpec], *, work_pool: str | None) -> list[str]:
    """Delete deployments named like ``specs`` that are bound to another work pool (None: served ones).

    A deployment made by ``maya deploy`` keeps its work pool when ``maya serve`` registers the same
    name (Prefect updates, it does not replace), and its runs then wait for a worker or crash; the
    same the other way round. Returns the names deleted. Flow runs already made are kept.
    """
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    gone = []
    with get_client(sync_client=True) as client:
        for s in specs:
            try:
                dep = client.read_deployment_by_name(s.full_name)
            except ObjectNotFound:
                continue
            if dep.work_pool_name != work_pool:
                client.delete_deployment(dep.id)
                gone.append(s.full_name)
    return gone


def serve_deployments(specs: list[DeploymentSpec]) -> None:
    """Register ``specs`` with the configured server and run their flow runs until interrupted."""
    from prefect import serve

    serve(*runner_deployments(specs), print_starting_message=False)


def ensure_work_pool(name: str) -> bool:
    """Create a process work pool ``name`` unless it exists. True when it was created."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(name)
            return False
        except ObjectNotFound:
            client.create_work_pool(WorkPoolCreate(name=name, type="process"))
            return True


def deploy_to_work_pool(specs: list[DeploymentSpec], pool: str, project_root: Path = PROJECT_ROOT) -> list:
    """Register ``specs`` on the process work pool ``pool``; a worker runs them from ``project_root``."""
    from prefect import flow as prefect_flow

    ids = []
    for s in specs:
        f = prefect_flow.from_source(source=str(project_root), entrypoint=s.entrypoint)
        ids.append(f.deploy(
            name=s.name, work_pool_name=pool, parameters=s.parameters, schedules=_schedules(s), paused=s.paused,
            description=s.description, tags=list(s.tags), concurrency_limit=1, print_next_steps=False,
            ignore_warnings=True))
    return ids


def trigger(flow: str, parameters: dict, *, wait: bool = True, timeout: float | None = None,
            poll_interval: float = 2.0):
    """Start a run of ``flow``'s deployment (``evaluate`` or ``dedup``); wait for its end unless told not to.

    Returns the FlowRun (its ``state`` is final when waited for).
    """
    from prefect.deployments import run_deployment

    name = DEPLOYMENTS.get(flow, flow)
    try:
        return run_deployment(name, parameters=parameters or None, timeout=None if wait and timeout is None
                              else (timeout if wait else 0), poll_interval=poll_interval)
    except Exception as e:
        if type(e).__name__ == "ObjectNotFound":
            raise OrchestrationError(f"no deployment {name!r} on the server: run `maya serve` or `maya deploy` "
                                     f"first") from None
        raise


# ---------------------------------------------------------------------------------------------- temporary API


def _configured_elsewhere() -> bool:
    """Whether Prefect may find an API URL in a file (profile, .env, prefect.toml, pyproject.toml)."""
    home = Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()
    profiles = Path(os.environ.get("PREFECT_PROFILES_PATH") or home / "profiles.toml").expanduser()
    for path, needle in ((profiles, "PREFECT_API_URL"), (Path(".env"), "PREFECT_API_URL"),
                         (Path("prefect.toml"), "url"), (Path("pyproject.toml"), "tool.prefect")):
        try:
            if needle in path.read_text(errors="replace"):
                return True
        except OSError:
            continue
    return False


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:  # runs in the child before exec (Linux): SIGTERM when we die, even by SIGKILL
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _start_server_process(port: int) -> "subprocess.Popen":
    import importlib.util
    import subprocess

    spec = importlib.util.find_spec("prefect")
    app_dir = Path(next(iter(spec.submodule_search_locations))).parent
    # The command and variables Prefect itself uses for its temporary server (prefect 3.x,
    # prefect.server.api.server.SubprocessASGIServer), started here before `import prefect` so that the
    # server boots while this process imports.
    env = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--app-dir", str(app_dir), "--factory",
         "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port", str(port),
         "--log-level", "error", "--lifespan", "on"],
        env=env, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent if sys.platform == "linux" else None)


def _wait_healthy(url: str, proc: "subprocess.Popen", timeout: float) -> bool:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.05)
    return False


@contextmanager
def prefect_api():
    """A Prefect API for the flows this command runs.

    With ``PREFECT_API_URL`` configured, nothing to do. Otherwise a temporary server (what Prefect's own
    ephemeral mode starts) is started *before* Prefect is imported, so its boot overlaps this process's
    imports (seconds saved per command); its URL goes to ``PREFECT_API_URL``, which Dask workers
    inherit (without it each worker would start a server of its own). It is stopped on exit, and by the
    kernel if this process is killed. ``MAYA_PREFECT_EARLY_SERVER=0`` leaves it all to Prefect.

    Use around the import of the flow and its call::

        with prefect_api():
            from maya.flows.evaluate import evaluate
            evaluate(...)
    """
    if (os.environ.get("PREFECT_API_URL") or "prefect" in sys.modules
            or os.environ.get("PREFECT_SERVER_EPHEMERAL_ENABLED", "").lower() in ("0", "false")
            or os.environ.get("MAYA_PREFECT_EARLY_SERVER", "1") == "0" or _configured_elsewhere()):
        yield None
        return
    timeout = float(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS") or 90)
    port = _free_port()
    proc = _start_server_process(port)
    url = f"http://127.0.0.1:{port}/api"
    os.environ["PREFECT_API_URL"] = url
    try:
        import prefect  # noqa: F401  (the import the flow needs anyway, while the server boots)

        if not _wait_healthy(url, proc, timeout):
            code = proc.poll()
            raise RuntimeError(f"the temporary Prefect server did not start within {timeout:.0f} s"
                               + (f" (it exited with code {code})" if code is not None else "")
                               + "; start one with `prefect server start` and set PREFECT_API_URL")
        yield url
    finally:
        _drain_logs()  # before the server goes: otherwise Prefect's exit-time flush fails on a closed port
        if os.environ.get("PREFECT_API_URL") == url:
            del os.environ["PREFECT_API_URL"]
        _stop(proc)


def _drain_logs() -> None:
    """Send the log lines Prefect still holds to the server (at most a few seconds)."""
    try:
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=5)
    except Exception:  # noqa: BLE001 - best effort: losing a log line must not fail the command
        pass


def _stop(proc: "subprocess.Popen") -> None:
    import subprocess

    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# ---------------------------------------------------------------------------------------------- commands


def parse_params(items: list[str] | None, as_json: str | None = None) -> dict:
    """``["k=v", ...]`` (v read as JSON when it parses, else a string) merged over ``--params JSON``."""
    out: dict = {}
    if as_json:
        try:
            out.update(json.loads(as_json))
        except json.JSONDecodeError as e:
            raise OrchestrationError(f"--params is not JSON: {e}") from None
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise OrchestrationError(f"--param takes KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def _specs_from_args(args) -> list[DeploymentSpec]:
    from maya.settings import load_settings

    settings = load_settings(data_dir=getattr(args, "data_dir", None))
    folders = list(args.dedup_folder or []) or dedup_folders_from_env()
    for f in folders:
        if not Path(f).expanduser().is_dir():
            raise OrchestrationError(f"no such folder to dedup: {f}")
    return deployment_specs(data_dir=settings.data_dir, dedup_folders=folders, model=args.model,
                            cron=args.cron, timezone=args.timezone)


def _print_specs(specs: list[DeploymentSpec]) -> None:
    for s in specs:
        when = f"cron {s.cron!r} ({s.timezone})" if s.cron else "on demand"
        state = ", paused: no folders configured (--dedup-folder or MAYA_DEDUP_FOLDERS)" if s.paused else ""
        print(f"  {s.full_name}: {when}{state}")
        print(f"    parameters: {json.dumps(s.parameters, sort_keys=True)}")


def cmd_serve(args) -> int:
    _quiet(args)
    url = require_api_url()
    specs = _specs_from_args(args)
    for name in forget_deployments_of_other_kind(specs, work_pool=None):
        print(f"replaced {name}, which was bound to a work pool (maya deploy)")
    print(f"serving on {url} (UI: {url.removesuffix('/api')}); stop with Ctrl-C")
    _print_specs(specs)
    print("trigger a run: maya run evaluate --param dataset=demo   or   "
          "prefect deployment run evaluate/evaluate-on-demand", flush=True)
    serve_deployments(specs)
    return 0


def cmd_deploy(args) -> int:
    _quiet(args)
    url = require_api_url()
    specs = _specs_from_args(args)
    created = ensure_work_pool(args.pool)
    for name in forget_deployments_of_other_kind(specs, work_pool=args.pool):
        print(f"replaced {name}, which was served by `maya serve` or bound to another pool")
    deploy_to_work_pool(specs, args.pool)
    print(f"registered on {url}, work pool {args.pool!r}{' (created)' if created else ''}:")
    _print_specs(specs)
    print(f"runs start once a worker polls the pool: cd {PROJECT_ROOT} && prefect worker start --pool {args.pool}")
    return 0


def cmd_run(args) -> int:
    _quiet(args)
    require_api_url()
    params = parse_params(args.param, args.params)
    run = trigger(args.flow, params, wait=not args.no_wait, timeout=args.timeout)
    name = DEPLOYMENTS.get(args.flow, args.flow)
    state = run.state
    print(f"flow run {run.name} ({run.id}) of {name}: {state.name if state else 'scheduled'}")
    if args.no_wait:
        return 0
    _print_maya_run(run, args)
    return 0 if state is not None and state.is_completed() else 1


def _print_maya_run(run, args) -> None:
    """The Maya run row the flow run wrote (found by its flow_run_id), if its database is readable here."""
    from maya import store
    from maya.settings import load_settings

    data_dir = (run.parameters or {}).get("data_dir") or getattr(args, "data_dir", None)
    db = load_settings(data_dir=data_dir).db_path
    try:
        con = store.connect(db, read_only=True)
    except Exception:  # noqa: BLE001 - another machine's database, or none yet: the state is enough
        return
    try:
        row = con.execute(
            "SELECT run_id, status, hashes_computed, hashes_reused, embeddings_computed, embeddings_reused, "
            "images_failed FROM runs WHERE flow_run_id = ?", [str(run.id)]).fetchone()
    finally:
        con.close()
    if row:
        print(f"maya run {row[0]} ({row[1]}): hashes {row[2]} computed, {row[3]} reused; embeddings {row[4]} "
              f"computed, {row[5]} reused; {row[6]} image(s) failed; database {db}")


def _quiet(args) -> None:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    if not getattr(args, "verbose", False):
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")


def add_orchestration_parsers(subparsers, common_parents: list[argparse.ArgumentParser]) -> None:
    """Add ``maya serve``, ``maya deploy`` and ``maya run`` to the CLI's subparsers."""
    schedule = argparse.ArgumentParser(add_help=False)
    schedule.add_argument("--dedup-folder", action="append", metavar="DIR",
                          help="folder the nightly dedup scans (repeat for several; env MAYA_DEDUP_FOLDERS, "
                               f"separated by {os.pathsep!r})")
    schedule.add_argument("--cron", help=f"schedule of the nightly dedup (default {DEFAULT_DEDUP_CRON!r}; "
                                         "env MAYA_DEDUP_CRON)")
    schedule.add_argument("--timezone", help=f"time zone of --cron (default {DEFAULT_TIMEZONE}; env MAYA_DEDUP_TIMEZONE)")
    schedule.add_argument("--model", help="embedding model of both deployments (default: the runner's MAYA_MODEL)")

    s = subparsers.add_parser(
        "serve", parents=[*common_parents, schedule],
        help="register the deployments with the Prefect server (PREFECT_API_URL) and run them until Ctrl-C",
        description=f"Serve {EVALUATE_DEPLOYMENT} (on demand) and {DEDUP_DEPLOYMENT} (nightly) from this process.")
    s.set_defaults(func=cmd_serve)

    d = subparsers.add_parser(
        "deploy", parents=[*common_parents, schedule],
        help="register the deployments on a process work pool of the Prefect server (PREFECT_API_URL)",
        description="Register the deployments for `prefect worker start --pool POOL` to run.")
    d.add_argument("--pool", default=DEFAULT_WORK_POOL, help=f"work pool (created if missing; default {DEFAULT_WORK_POOL})")
    d.set_defaults(func=cmd_deploy)

    r = subparsers.add_parser(
        "run", parents=common_parents,
        help="trigger a deployment (evaluate or dedup) on the Prefect server and wait for it",
        description=f"Trigger {EVALUATE_DEPLOYMENT} or {DEDUP_DEPLOYMENT}; exit 0 when the run completed.")
    r.add_argument("flow", choices=sorted(DEPLOYMENTS), help="which deployment")
    r.add_argument("--param", action="append", metavar="KEY=VALUE",
                   help="a flow parameter (VALUE read as JSON when it parses: --param seed=3 --param "
                        "'paths=[\"/photos\"]'); repeat for several")
    r.add_argument("--params", metavar="JSON", help="parameters as one JSON object")
    r.add_argument("--no-wait", action="store_true", help="return once the run is scheduled")
    r.add_argument("--timeout", type=float, help="seconds to wait at most (default: until it ends)")
    r.set_defaults(func=cmd_run)


def main(argv: list[str] | None = None) -> int:
    """``python -m maya.cli.orchestration serve|deploy|run ...``: the same commands without the rest of the CLI."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", help="folder of the DuckDB file (env MAYA_DATA_DIR; default ./maya-data)")
    common.add_argument("--debug", action="store_true", help="show tracebacks")
    common.add_argument("--verbose", action="store_true", help="show Prefect's own log lines")
    parser = argparse.ArgumentParser(prog="maya")
    add_orchestration_parsers(parser.add_subparsers(dest="command", required=True), [common])
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        return 130
    except OrchestrationError as e:
        if args.debug:
            raise
        print(f"maya: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
