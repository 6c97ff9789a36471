"""The evaluate flow on a real Dask cluster of separate worker processes.

Same scores as the thread runner; features computed in the worker processes; only the flow's process
writes DuckDB; the workers report to the flow's Prefect API
instead of starting temporary servers of their own, with a real server and in ephemeral mode alike.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from maya import store

pytestmark = pytest.mark.slow

POSITIVES = {"positives_per_original": 3, "chains_per_original": 1}


@pytest.fixture(scope="module")
def cluster():
    """Two worker processes, one thread each, reached by address as a remote cluster would be."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=40) as lc, distributed.Client(lc) as client:
        yield lc.scheduler_address, client


def _worker_modules(client, *names) -> dict:
    return client.run(lambda names=names: {n: n in sys.modules for n in names})


def _scores(data, run_id):
    con = store.connect(data / "maya.duckdb", read_only=True)
    try:
        return con.execute("SELECT pair_id, phash_distance, clip_similarity FROM scores WHERE run_id = ? "
                           "ORDER BY pair_id", [run_id]).fetchall()
    finally:
        con.close()


@pytest.fixture(scope="module")
def both_runners(prefect_server, cluster, photo_dir, tiny_clip_dir, tmp_path_factory):
    from maya.flows.evaluate import evaluate

    address, _ = cluster
    out = {}
    for runner in ("threads", "dask"):
        data = tmp_path_factory.mktemp(f"data-{runner}")
        out[runner] = data, evaluate(
            dataset="d", source=str(photo_dir), seed=2, model=str(tiny_clip_dir), data_dir=str(data),
            batch_size=8, device="cpu", pair_options=POSITIVES,
            dask_address=address if runner == "dask" else None)
    return out


def test_dask_gives_the_same_scores_as_threads(both_runners):
    (t_data, threads), (d_data, dask) = both_runners["threads"], both_runners["dask"]
    assert threads["task_runner"] == "threads" and dask["task_runner"].startswith("tcp://")
    assert dask["counts"]["embeddings_computed"] == threads["counts"]["embeddings_computed"] == dask["images"]
    assert dask["model"] == threads["model"]
    assert _scores(d_data, dask["run_id"]) == _scores(t_data, threads["run_id"])
    assert dask["results"] == threads["results"]


def test_features_are_computed_in_the_workers_and_written_by_the_flow(both_runners, cluster):
    _, client = cluster
    _, dask = both_runners["dask"]
    _, threads = both_runners["threads"]
    worker_pids = set(client.run(os.getpid).values())
    assert set(dask["counts"]["worker_pids"]) <= worker_pids and len(dask["counts"]["worker_pids"]) >= 1
    assert os.getpid() not in worker_pids and threads["counts"]["worker_pids"] == [os.getpid()]
    assert any(m["maya.features"] for m in _worker_modules(client, "maya.features").values())
    # Only the flow writes: it holds DuckDB's write lock for the whole run, so a worker that opened the
    # file would have failed the run (StoreLockedError); and no worker holds the file open now.
    d_data, _ = both_runners["dask"]
    db = str((d_data / "maya.duckdb").resolve())
    open_in_workers = client.run(lambda db=db: [os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
                                                if os.path.islink(f"/proc/self/fd/{fd}")
                                                and os.readlink(f"/proc/self/fd/{fd}").startswith(db)])
    assert all(v == [] for v in open_in_workers.values())


def test_workers_report_to_the_flows_server(both_runners, cluster):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter

    _, client = cluster
    d_data, dask = both_runners["dask"]
    con = store.connect(d_data / "maya.duckdb", read_only=True)
    flow_run_id = con.execute("SELECT flow_run_id FROM runs WHERE run_id = ?", [dask["run_id"]]).fetchone()[0]
    con.close()
    with get_client(sync_client=True) as c:
        task_runs = c.read_task_runs(flow_run_filter=FlowRunFilter(id={"any_": [flow_run_id]}))
    done = [r for r in task_runs if r.name.startswith("image-features") and r.state.is_completed()]
    assert len(done) == dask["counts"]["batches"] >= 2
    # no worker started a temporary Prefect server of its own
    assert not any(m["prefect.server.api.server"] for m in _worker_modules(
        client, "prefect.server.api.server").values())


def test_ephemeral_mode_workers_share_the_flows_temporary_server(cluster, photo_dir, tiny_clip_dir, tmp_path):
    """No PREFECT_API_URL: the flow starts a temporary server; the workers must use it, not their own."""
    address, client = cluster
    code = (
        "import json, sys\n"
        "from flows.evaluate import evaluate\n"
        f"s = evaluate(dataset='e', source={str(photo_dir)!r}, seed=4, model={str(tiny_clip_dir)!r}, "
        f"data_dir={str(tmp_path)!r}, batch_size=16, device='cpu', "
        "pair_options={'positives_per_original': 1, 'chains_per_original': 0}, "
        f"dask_address={address!r})\n"
        "print('SUMMARY', json.dumps({'batches': s['counts']['batches'], 'pids': s['counts']['worker_pids']}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-4000:]
    summary = json.loads(out.stdout.split("SUMMARY", 1)[1])
    assert summary["batches"] >= 1 and set(summary["pids"]) <= set(client.run(os.getpid).values())
    assert not any(m["prefect.server.api.server"] for m in _worker_modules(
        client, "prefect.server.api.server").values())
