"""Against a real ``prefect server start`` on 127.0.0.1 with a temporary PREFECT_HOME: register the
deployments (``maya serve``), trigger an evaluate run (``maya run``), wait for it through the API, check
the DuckDB rows it wrote, check the nightly schedule, register them on a work pool (``maya deploy``) and
run one there, and shut everything down cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from maya import store

ROOT = Path(__file__).resolve().parent.parent
PREFECT = str(Path(sys.executable).parent / "prefect")


def _cli() -> list[str]:
    """``maya`` once its parser has the orchestration commands, else their own entry point."""
    from maya.cli.app import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    module = "maya.cli" if "serve" in sub.choices else "maya.cli.orchestration"
    return [sys.executable, "-m", module]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            got = check()
        except Exception:  # noqa: BLE001 - not up yet
            got = None
        if got:
            return got
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _healthy(url: str) -> bool:
    with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
        return r.status == 200


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def _stop_group(proc: subprocess.Popen, timeout: float) -> float:
    """SIGTERM the process; seconds it took to exit. Kills the whole group if anything stays."""
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    finally:
        if _group_alive(proc.pid):
            time.sleep(2)  # children exit just after their parent
        if _group_alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError("processes of the group were left running after SIGTERM")
    return time.monotonic() - t0


class Stack:
    def __init__(self, url, env, data, n_pairs, n_images, server, logs):
        self.url, self.env, self.data, self.n_pairs, self.n_images = url, env, data, n_pairs, n_images
        self.server, self.logs, self.serve = server, logs, None

    @contextmanager
    def client(self):
        from prefect.client.orchestration import get_client
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings(updates={PREFECT_API_URL: self.url}), get_client(sync_client=True) as c:
            yield c

    def cli(self, *args, timeout=300):
        return subprocess.run(_cli() + list(args), env=self.env, capture_output=True, text=True, timeout=timeout,
                              cwd=ROOT)


@pytest.fixture(scope="module")
def stack(photo_dir, tiny_clip_dir, tmp_path_factory):
    from maya.pairs import build as pairs

    tmp = tmp_path_factory.mktemp("real-server")
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(tmp / "prefect-home"), PREFECT_API_URL=url, PREFECT_SERVER_API_HOST="127.0.0.1",
               PREFECT_SERVER_API_PORT=str(port), PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1",
               PREFECT_UI_ENABLED="false", PREFECT_RUNNER_POLL_FREQUENCY="1", PREFECT_WORKER_QUERY_SECONDS="1",
               PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL="WARNING", MAYA_MODEL=str(tiny_clip_dir),
               MAYA_DEVICE="cpu", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    # a tiny dataset, pairs stored, no features yet
    data = tmp / "data"
    con = store.connect(data / "maya.duckdb")
    ps = pairs.build_pairs(photo_dir, data / "images", seed=7, positives_per_original=2, chains_per_original=0)
    store.save_pairset(con, "s", origin="build", source=str(photo_dir), seed=7, params={"kind": "build"}, pairset=ps)
    con.close()
    n_images = len({p.a for p in ps.pairs} | {p.b for p in ps.pairs})

    logs = tmp / "logs"
    logs.mkdir()
    server = subprocess.Popen([PREFECT, "server", "start"], env=env, cwd=tmp, start_new_session=True,
                              stdout=open(logs / "server.log", "w"), stderr=subprocess.STDOUT)
    s = Stack(url, env, data, len(ps.pairs), n_images, server, logs)
    try:
        _wait_until(lambda: _healthy(url), 120, "the Prefect server to answer")
        yield s
    finally:
        for proc in (s.serve, server):
            if proc is not None and _group_alive(proc.pid):
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.mark.slow
def test_serve_registers_the_deployments(stack, photo_dir):
    stack.serve = subprocess.Popen(
        _cli() + ["serve", "--data-dir", str(stack.data), "--dedup-folder", str(photo_dir)], env=stack.env,
        cwd=ROOT, start_new_session=True, stdout=open(stack.logs / "serve.log", "w"), stderr=subprocess.STDOUT)

    def registered():
        with stack.client() as c:
            return [c.read_deployment_by_name(n) for n in ("evaluate/evaluate-on-demand", "dedup/dedup-nightly")]

    evaluate_dep, dedup_dep = _wait_until(registered, 120, "maya serve to register the deployments")
    assert evaluate_dep.parameters["data_dir"] == str(stack.data.resolve())
    assert evaluate_dep.work_pool_name is None  # served, not on a pool


@pytest.mark.slow
def test_nightly_dedup_has_its_schedule(stack, photo_dir):
    with stack.client() as c:
        dedup_dep = c.read_deployment_by_name("dedup/dedup-nightly")
        evaluate_dep = c.read_deployment_by_name("evaluate/evaluate-on-demand")
    assert [(s.schedule.cron, s.schedule.timezone, s.active) for s in dedup_dep.schedules] == [
        ("0 2 * * *", "UTC", True)]
    assert not dedup_dep.paused and dedup_dep.parameters["paths"] == [str(photo_dir.resolve())]
    assert evaluate_dep.schedules == []  # on demand only


@pytest.mark.slow
def test_triggered_evaluate_run_completes_and_writes_duckdb(stack):
    from prefect.client.schemas.objects import StateType

    out = stack.cli("run", "evaluate", "--param", "dataset=s", "--timeout", "240")
    assert out.returncode == 0, out.stdout + out.stderr + (stack.logs / "serve.log").read_text()[-3000:]
    assert ": Completed" in out.stdout and f"embeddings {stack.n_images} computed" in out.stdout
    con = store.connect(stack.data / "maya.duckdb", read_only=True)
    try:
        run_id, status, flow_run_id = con.execute(
            "SELECT run_id, status, flow_run_id FROM runs WHERE flow = 'evaluate'").fetchone()
        n_scores = con.execute("SELECT count(*) FROM scores WHERE run_id = ?", [run_id]).fetchone()[0]
        n_emb = con.execute("SELECT count(*) FROM embeddings WHERE model NOT LIKE '%@inner-v2'").fetchone()[0]
        methods = {m for (m,) in con.execute("SELECT DISTINCT method FROM metrics WHERE run_id = ? AND selected",
                                             [run_id]).fetchall()}
    finally:
        con.close()
    assert status == "completed" and n_scores == stack.n_pairs and n_emb == stack.n_images
    assert methods == {"phash", "clip", "hybrid", "cascade", "phash-dihedral", "cascade-dihedral",
                                 "clip-views", "cascade-views"}
    # the API agrees: the flow run that wrote these rows belongs to the deployment and completed
    with stack.client() as c:
        fr = c.read_flow_run(flow_run_id)
        dep = c.read_deployment_by_name("evaluate/evaluate-on-demand")
    assert fr.state.type == StateType.COMPLETED and fr.deployment_id == dep.id


@pytest.mark.slow
def test_deploy_registers_on_a_work_pool_and_a_worker_runs_it(stack):
    out = stack.cli("deploy", "--pool", "maya-test", "--data-dir", str(stack.data))
    assert out.returncode == 0, out.stdout + out.stderr
    with stack.client() as c:
        deps = [c.read_deployment_by_name(n) for n in ("evaluate/evaluate-on-demand", "dedup/dedup-nightly")]
    assert {d.work_pool_name for d in deps} == {"maya-test"}
    assert deps[0].pull_steps == [{"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}]
    assert deps[1].paused  # no folders given this time: the nightly run waits until some are configured
    queued = stack.cli("run", "evaluate", "--param", "dataset=s", "--no-wait")
    assert queued.returncode == 0, queued.stdout + queued.stderr
    worker = subprocess.run([PREFECT, "worker", "start", "--pool", "maya-test", "--run-once"], env=stack.env,
                            cwd=ROOT, capture_output=True, text=True, timeout=300, start_new_session=True)
    assert worker.returncode == 0, worker.stdout[-3000:] + worker.stderr[-3000:]
    con = store.connect(stack.data / "maya.duckdb", read_only=True)
    try:
        rows = con.execute("SELECT status, embeddings_computed, embeddings_reused FROM runs WHERE flow = 'evaluate' "
                           "ORDER BY run_id").fetchall()
    finally:
        con.close()
    assert rows[-1] == ("completed", 0, stack.n_images) and len(rows) == 2


@pytest.mark.slow
def test_shutdown_is_clean(stack):
    assert stack.serve.poll() is None and stack.server.poll() is None
    assert _stop_group(stack.serve, 30) < 30
    assert _stop_group(stack.server, 30) < 30
    assert stack.server.returncode is not None


# ---------------------------------------------------------------------------------------------- no server


def test_prefect_yaml_describes_the_same_deployments():
    import yaml

    from maya.cli.orchestration import deployment_specs

    conf = yaml.safe_load((ROOT / "deployments" / "prefect.yaml").read_text())
    specs = {s.name: s for s in deployment_specs(data_dir="/d", dedup_folders=["/p"])}
    assert {d["name"] for d in conf["deployments"]} == set(specs) == {"evaluate-on-demand", "dedup-nightly"}
    for d in conf["deployments"]:
        s = specs[d["name"]]
        assert d["entrypoint"] == s.entrypoint and (ROOT / s.entrypoint.split(":")[0]).exists()
        assert set(d["parameters"]) == set(s.parameters), d["name"]
        assert [(c["cron"], c["timezone"]) for c in d.get("schedules", [])] == ([(s.cron, s.timezone)] if s.cron else [])


def test_deployment_specs_and_parameters(tmp_path, monkeypatch):
    from maya.cli.orchestration import OrchestrationError, dedup_folders_from_env, deployment_specs, parse_params

    monkeypatch.delenv("MAYA_DEDUP_CRON", raising=False)
    evaluate_spec, dedup_spec = deployment_specs(data_dir=tmp_path / "d", dedup_folders=[str(tmp_path)],
                                                 cron="30 3 * * 1", timezone="Europe/Paris")
    assert evaluate_spec.full_name == "evaluate/evaluate-on-demand" and evaluate_spec.cron is None
    assert dedup_spec.full_name == "dedup/dedup-nightly" and (dedup_spec.cron, dedup_spec.timezone) == (
        "30 3 * * 1", "Europe/Paris")
    assert dedup_spec.parameters["paths"] == [str(tmp_path)] and not dedup_spec.paused
    assert evaluate_spec.parameters["data_dir"] == str(tmp_path / "d")
    assert deployment_specs(data_dir=tmp_path)[1].paused  # no folders: registered paused
    assert deployment_specs(data_dir=tmp_path)[1].cron == "0 2 * * *"
    assert dedup_folders_from_env({"MAYA_DEDUP_FOLDERS": f"/a{os.pathsep}/b{os.pathsep}"}) == ["/a", "/b"]
    assert parse_params(["seed=3", "dataset=demo", "paths=[\"/x\"]", "refresh=true"], '{"model": "m"}') == {
        "model": "m", "seed": 3, "dataset": "demo", "paths": ["/x"], "refresh": True}
    with pytest.raises(OrchestrationError):
        parse_params(["no-equals-sign"])


@pytest.mark.slow
def test_run_without_a_server_is_a_one_line_usage_error(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(tmp_path)
    out = subprocess.run(_cli() + ["run", "evaluate"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "no Prefect server configured" in out.stderr
    assert "Traceback" not in out.stderr


_EARLY = """
import os, sys, time
from maya.cli.prefect_server import prefect_api
with prefect_api() as url:
    from prefect import flow
    from prefect.settings import PREFECT_API_URL

    @flow
    def probe():
        return str(PREFECT_API_URL.value())

    print("URL", url, probe(), flush=True)
    if sys.argv[1] == "hang":
        time.sleep(600)
"""


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:  # a zombie (exited, not yet reaped by init) counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="parent-death signal is Linux only")
def test_commands_temporary_server_serves_the_flow_and_dies_with_the_command(tmp_path):
    """No PREFECT_API_URL: the command's own temporary server runs the flow, and is gone once the command
    ends, normally or by SIGKILL (no orphaned server)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(PREFECT_HOME=str(tmp_path), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    done = subprocess.run([sys.executable, "-c", _EARLY, "exit"], env=env, capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    url, seen = done.stdout.split("URL", 1)[1].split()[:2]
    assert url.startswith("http://127.0.0.1:") and seen == url  # the flow talked to our server

    proc = subprocess.Popen([sys.executable, "-c", _EARLY, "hang"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout.readline().startswith("URL http://127.0.0.1:")
        servers = _children(proc.pid)
        assert servers, "no server process under the command"
        proc.kill()
        proc.wait()
        _wait_until(lambda: all(_gone(p) for p in servers), 20, "the orphaned server to exit")
    finally:
        if proc.poll() is None:
            proc.kill()
