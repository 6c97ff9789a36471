"""Resume: SIGKILL a ``maya evaluate`` process mid-way, run it again, and the tables come out complete,
duplicate-free, and without recomputing the batches the killed run had committed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from maya import store

pytestmark = pytest.mark.slow

BATCH = 2  # images per feature batch: many batches, so the kill lands between two of them


@pytest.fixture()
def built(prefect_server, photo_dir, tmp_path):
    """A data folder with a dataset's pairs stored and no features yet."""
    from maya.pairs import build as pairs

    data = tmp_path / "data"
    con = store.connect(data / "maya.duckdb")
    ps = pairs.build_pairs(photo_dir, data / "images", seed=5, positives_per_original=4, chains_per_original=1)
    store.save_pairset(con, "r", origin="build", source=str(photo_dir), seed=5, params={"kind": "build"}, pairset=ps)
    n_images = len(set(p.a for p in ps.pairs) | set(p.b for p in ps.pairs))
    n_pairs = len(ps.pairs)
    con.close()
    return data, n_images, n_pairs


def _env(data, model) -> dict:
    from prefect.settings import PREFECT_API_URL

    # the session's test server: no temporary server that a SIGKILL would leave behind; every batch in its own
    # transaction (MAYA_WRITE_ROWS=1; by default 128 contents are written together), so kills land between commits
    return dict(os.environ, PREFECT_API_URL=str(PREFECT_API_URL.value()), MAYA_DATA_DIR=str(data),
                MAYA_MODEL=str(model), PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL="INFO", PYTHONUNBUFFERED="1",
                MAYA_WRITE_ROWS="1")


def _evaluate_cmd() -> list[str]:
    return [sys.executable, "-m", "maya.cli", "evaluate", "--dataset", "r", "--batch-size", str(BATCH),
            "--device", "cpu", "--verbose"]


def _kill_after(env, marker: str, timeout: float = 300) -> list[str]:
    """Run ``maya evaluate``; SIGKILL it as soon as a log line contains ``marker``. Returns the lines seen."""
    proc = subprocess.Popen(_evaluate_cmd(), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    try:
        for line in proc.stdout:
            lines.append(line)
            if marker in line:
                os.kill(proc.pid, signal.SIGKILL)
                break
            assert time.monotonic() < deadline, "no kill point reached in time"
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, "".join(lines[-20:])
    return lines


def _counts(db) -> dict:
    con = store.connect(db, read_only=True)
    try:
        q = lambda sql: con.execute(sql).fetchall()  # noqa: E731
        return {
            # whole images only (views have their own ids: 'phash64-v2@inner-v2', '<model>@inner-v2')
            "hashes": q("SELECT count(*) FROM hashes WHERE algorithm NOT LIKE '%@inner-v2'")[0][0],
            "embeddings": q("SELECT count(*) FROM embeddings WHERE model NOT LIKE '%@inner-v2'")[0][0],
            "images": q("SELECT count(*) FROM images")[0][0],
            "runs": q("SELECT run_id, status, hashes_computed, hashes_reused, embeddings_computed, "
                      "embeddings_reused FROM runs ORDER BY run_id"),
            "scores": q("SELECT run_id, count(*), count(DISTINCT pair_id) FROM scores GROUP BY run_id ORDER BY 1"),
            "metrics_runs": [r[0] for r in q("SELECT DISTINCT run_id FROM metrics ORDER BY 1")],
            "dup_hashes": q("SELECT count(*) FROM (SELECT sha256, algorithm FROM hashes GROUP BY ALL "
                            "HAVING count(*) > 1)")[0][0],
            "dup_embeddings": q("SELECT count(*) FROM (SELECT sha256, model FROM embeddings GROUP BY ALL "
                                "HAVING count(*) > 1)")[0][0],
            "dup_metrics": q("SELECT count(*) FROM (SELECT run_id, split, method, phash_accept, phash_threshold, "
                             "clip_threshold FROM metrics GROUP BY ALL HAVING count(*) > 1)")[0][0],
        }
    finally:
        con.close()


@pytest.mark.parametrize("kill_at", ["batch 2/", "batch 5/"])
def test_killed_run_resumes_without_recomputing_finished_batches(built, tiny_clip_dir, kill_at):
    data, n_images, n_pairs = built
    db = data / "maya.duckdb"
    env = _env(data, tiny_clip_dir)
    assert n_images > 8 * BATCH  # several batches after the kill point

    lines = _kill_after(env, f"features: {kill_at}")
    assert any("committed" in line for line in lines)
    killed = _counts(db)
    done = killed["embeddings"]
    # the batches committed before the kill are in, whole; the rest is not; the killed run stays 'running'
    print(f"killed at {kill_at!r}: {done} of {n_images} images committed")
    assert 2 * BATCH <= done < n_images and done % BATCH == 0
    assert killed["hashes"] == done
    assert killed["runs"][0][1] == "running" and killed["scores"] == [] and killed["metrics_runs"] == []

    out = subprocess.run(_evaluate_cmd(), env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    final = _counts(db)
    run_id, status, h_computed, h_reused, e_computed, e_reused = final["runs"][-1]
    assert status == "completed"
    assert final["runs"][0][1] == "interrupted"  # the killed run is marked when the next one starts
    # nothing the killed run finished is computed again; everything else is computed once
    assert (e_reused, e_computed) == (done, n_images - done)
    assert (h_reused, h_computed) == (done, n_images - done)
    assert f"embeddings: {n_images - done} computed, {done} reused" in out.stdout
    # complete and duplicate-free
    assert final["hashes"] == final["embeddings"] == final["images"] == n_images
    assert final["scores"] == [(run_id, n_pairs, n_pairs)]
    assert final["metrics_runs"] == [run_id]
    assert final["dup_hashes"] == final["dup_embeddings"] == final["dup_metrics"] == 0
