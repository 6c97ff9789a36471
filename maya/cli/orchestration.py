"""``maya serve``, ``maya deploy`` and ``maya run``: register the deployments of
:mod:`maya.cli.deployments` with the Prefect server named by ``PREFECT_API_URL``, and trigger them.

``maya serve`` registers both and runs their flow runs in this process's children until stopped (the
simplest setup: one process, no work pool). ``maya deploy`` registers them on a process work pool
instead, for ``prefect worker start --pool maya`` to run. ``deployments/prefect.yaml`` is the same two
deployments for ``prefect deploy``, generated from the same definitions.

Prefect is imported inside functions only: ``maya --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from maya.cli.deployments import (  # noqa: F401  (dedup_folders_from_env, DeploymentSpec: part of this API)
    DEDUP_DEPLOYMENT, DEFAULT_DEDUP_CRON, DEFAULT_TIMEZONE, DEFAULT_WORK_POOL, DEPLOYMENTS, EVALUATE_DEPLOYMENT,
    PROJECT_ROOT, DeploymentSpec, dedup_folders_from_env, deployment_specs)
from maya.cli.options import common_parser
from maya.cli.prefect_server import prefect_api, quiet_prefect  # noqa: F401  (prefect_api: part of this API)
from maya.errors import MayaUsageError


class OrchestrationError(MayaUsageError):
    """A setup problem the user can fix (no server configured, unknown deployment): exit 2, one line."""


# ---------------------------------------------------------------------------------------------- Prefect


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
    from prefect.exceptions import ObjectNotFound

    name = DEPLOYMENTS.get(flow, flow)
    try:
        return run_deployment(name, parameters=parameters or None, timeout=None if wait and timeout is None
                              else (timeout if wait else 0), poll_interval=poll_interval)
    except ObjectNotFound:
        raise OrchestrationError(f"no deployment {name!r} on the server: run `maya serve` or `maya deploy` "
                                 f"first") from None


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
        row = store.run_of_flow_run(con, str(run.id))
    finally:
        con.close()
    if row:
        print(f"maya run {row['run_id']} ({row['status']}): hashes {row['hashes_computed']} computed, "
              f"{row['hashes_reused']} reused; embeddings {row['embeddings_computed']} computed, "
              f"{row['embeddings_reused']} reused; {row['images_failed']} image(s) failed; database {db}")


def _quiet(args) -> None:
    # serve and deploy show Prefect's log lines (the flow runs they start): only analytics and Dask go quiet
    quiet_prefect(getattr(args, "verbose", False), hide_flow_logs=False)


def add_orchestration_parsers(subparsers, common_parents: list[argparse.ArgumentParser]) -> None:
    """Add ``maya serve``, ``maya deploy`` and ``maya run`` to the CLI's subparsers."""
    schedule = argparse.ArgumentParser(add_help=False)
    schedule.add_argument("--dedup-folder", action="append", metavar="DIR",
                          help="folder the nightly dedup scans (repeat for several; env MAYA_DEDUP_FOLDERS, "
                               f"separated by {os.pathsep!r}; default: none, the dedup deployment is not scheduled)")
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
                        "'paths=[\"/photos\"]'); repeat for several; default: the deployment's own")
    r.add_argument("--params", metavar="JSON", help="parameters as one JSON object (default: the deployment's own)")
    r.add_argument("--no-wait", action="store_true", help="return once the run is scheduled")
    r.add_argument("--timeout", type=float, help="seconds to wait at most (default: until it ends)")
    r.set_defaults(func=cmd_run)


def main(argv: list[str] | None = None) -> int:
    """``python -m maya.cli.orchestration serve|deploy|run ...``: the same commands without the rest of the CLI."""
    parser = argparse.ArgumentParser(prog="maya")
    add_orchestration_parsers(parser.add_subparsers(dest="command", required=True), [common_parser()])
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        return 130
    except OrchestrationError as e:
        if args.debug:
            raise
        from maya.io.printable import printable_lines

        print(f"maya: error: {printable_lines(e)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
