"""Issue 7 for dedup: hostile files never crash a run or get lost; a killed run resumes where it stopped."""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from maya import store
from maya.io import ingest
from maya.dedup.options import DedupOptions
from maya.dedup.pipeline import run_dedup
from tests.hostile import ORIENTATION_NAMES, build_hostile_corpus, restore_permissions

ROOT = Path(__file__).resolve().parent.parent


def maya_dedup_command() -> list[str]:
    """``maya dedup`` as a subprocess: through maya/cli.py once it has the sub-command, else maya/cli_dedup.py."""
    from maya.cli.app import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    if "dedup" in sub.choices:
        return [sys.executable, "-m", "maya.cli", "dedup"]
    return [sys.executable, "-m", "maya.cli.dedup"]


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(extra)
    return env


# ---------------------------------------------------------------------------------------------- hostile corpus


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    expected = build_hostile_corpus(root)
    # a folder named like an image is a folder: what is inside is found
    inside = root / "dir.jpg" / "inside.png"
    inside.write_bytes((root / "rgba.png").read_bytes())
    yield root, expected
    restore_permissions(root)


@pytest.mark.slow
def test_hostile_corpus_every_good_file_scored_every_bad_file_listed(hostile, tmp_path):
    root, expected = hostile
    out = tmp_path / "out.json"
    data = tmp_path / "data"
    proc = subprocess.run(maya_dedup_command() + [str(root), "--mode", "phash", "--json", str(out),
                                                  "--data-dir", str(data)],
                          capture_output=True, text=True, errors="replace", cwd=ROOT, env=_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    report = json.loads(out.read_text())
    errors = {e["path"]: e["error"] for e in report["errors"]}
    bad = {name: reason for name, reason in expected.items() if reason is not None and name != "dir.jpg"}
    good = [name for name, reason in expected.items() if reason is None] + ["dir.jpg/inside.png"]
    assert set(errors) == {str(root / name) for name in bad}
    for name, reason in bad.items():
        assert errors[str(root / name)].startswith(reason + ": "), (name, errors[str(root / name)])
    # the summary says how many failed, one line per problem, no traceback
    assert f"{len(bad)} files could not be used:" in proc.stdout
    for name in bad:
        assert ingest.path_text(str(root / name)) + ": " in proc.stdout
    # every good file was scored: a stored pHash for its content
    con = store.connect(data / "maya.duckdb", read_only=True)
    run_id = con.execute("SELECT max(run_id) FROM runs WHERE flow = 'dedup'").fetchone()[0]
    hashed = {p for (p,) in con.execute(
        "SELECT f.path FROM files f JOIN hashes h USING (sha256) WHERE f.status = 'ok'").fetchall()}
    assert {ingest.path_text(str(root / name)) for name in good} <= hashed
    stored = dict(con.execute("SELECT path, reason FROM dedup_errors WHERE run_id = ?", [run_id]).fetchall())
    assert stored == {ingest.path_text(str(root / name)): reason for name, reason in bad.items()}
    assert con.execute("SELECT status FROM runs WHERE run_id = ?", [run_id]).fetchone()[0] == "completed"
    con.close()
    # EXIF orientation is honoured: the eight rotated/mirrored JPEGs are one group, 0-2 bits apart
    by_path = {m["path"]: (g["keep"], m["phash_distance"]) for g in report["groups"] for m in g["members"]}
    oriented = [by_path[str(root / n)] for n in ORIENTATION_NAMES.values()]
    assert len({keep for keep, _ in oriented}) == 1
    keep = oriented[0][0]
    from maya.hashing.phash import hamming

    con = store.connect(data / "maya.duckdb", read_only=True)
    bits = dict(con.execute("SELECT f.path, h.bits FROM files f JOIN hashes h USING (sha256)").fetchall())
    con.close()
    values = [bits[ingest.path_text(str(root / n))] for n in ORIENTATION_NAMES.values()]
    assert int(max(hamming(a, b) for a in values for b in values)) <= 2
    # non-UTF-8 names come back from the JSON as the same bytes
    for m in (m for g in report["groups"] for m in g["members"]):
        assert os.path.lexists(os.fsencode(m["path"]))
    assert keep in by_path


def test_transient_read_errors_are_told_apart():
    assert ingest.is_transient("unreadable", "unreadable: Input/output error")
    assert ingest.is_transient("unreadable", "unreadable: Stale file handle")
    for error in ("unreadable: permission denied", "unreadable: symbolic link loop (too many levels of symbolic "
                  "links)", "unreadable: not a regular file (a FIFO)", "unreadable: file name too long"):
        assert not ingest.is_transient("unreadable", error)
    assert not ingest.is_transient("truncated", "truncated: JPEG: image file is truncated")


@pytest.mark.slow
def test_a_second_process_on_the_same_database_fails_fast_with_a_clear_message(tmp_path, photo_dir, capsys):
    from maya.cli.dedup import main

    db = tmp_path / "data" / "maya.duckdb"
    store.connect(db).close()
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
                               "print('holding', flush=True); time.sleep(60)", str(db)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        started = time.monotonic()
        rc = main([str(photo_dir), "--mode", "phash", "--data-dir", str(tmp_path / "data")])
        assert time.monotonic() - started < 10
    finally:
        holder.kill()
        holder.wait()
    assert rc == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"is in use by process {holder.pid}" in err


# ---------------------------------------------------------------------------------------------- kill and resume


def _synthetic_photos(root: Path, n_distinct: int = 48, n_copies: int = 8, side: int = 256) -> int:
    """Distinct smooth random images (distinct pHashes) plus JPEG re-encodes of some. Returns the file count."""
    from PIL import Image

    rng = np.random.default_rng(7)
    root.mkdir(parents=True, exist_ok=True)
    for k in range(n_distinct):
        small = (rng.random((6, 6, 3)) * 255).astype(np.uint8)
        img = Image.fromarray(small).resize((side, side), Image.Resampling.BICUBIC)
        img.save(root / f"img{k:03d}.png")
        if k < n_copies:
            img.save(root / f"img{k:03d}_copy.jpg", quality=85)
    return n_distinct + n_copies


@pytest.mark.slow
def test_sigkill_in_the_middle_of_embedding_then_resume(prefect_server, tiny_clip_dir, tmp_path):
    """A `maya dedup` (the Prefect flow, on the test's Prefect server) is SIGKILLed after its first feature
    batches were committed; the next run computes only what was missing and ends with the same groups."""
    from prefect.settings import PREFECT_API_URL

    photos = tmp_path / "photos"
    n_files = _synthetic_photos(photos)
    data = tmp_path / "data"
    # The tiny random CLIP puts distinct pictures at similarity <= 0.9986 and JPEG copies at > 0.9999.
    thresholds = {"clip_verify": 0.999, "clip_strict": 0.999}
    args = [str(photos), "--mode", "hybrid", "--model", str(tiny_clip_dir), "--batch-size", "2",
            "--clip-verify", "0.999", "--clip-strict", "0.999",
            "--data-dir", str(data), "--json", str(tmp_path / "resumed.json")]
    # every batch in its own transaction (MAYA_WRITE_ROWS=1; by default 128 contents are written together), so
    # the kill lands between two commits of this small run
    env = _env(PREFECT_API_URL=PREFECT_API_URL.value(), MAYA_WRITE_ROWS="1")
    proc = subprocess.Popen(maya_dedup_command() + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT, env=env)
    seen = []
    try:
        for line in proc.stderr:  # progress lines: one per committed batch, at most one per second
            seen.append(line)
            m = re.match(r"maya: features: (\d+)/(\d+)", line)
            if m and int(m.group(1)) >= 2:
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        proc.kill()
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "".join(seen)

    con = store.connect(data / "maya.duckdb", read_only=True)
    killed_run, model_id, status = con.execute(
        "SELECT run_id, model, status FROM runs WHERE flow = 'dedup' ORDER BY run_id DESC LIMIT 1").fetchone()
    assert status == "running"  # it never finished
    stored_e = con.execute("SELECT count(*) FROM embeddings WHERE model = ?", [model_id]).fetchone()[0]
    stored_h = con.execute("SELECT count(*) FROM hashes").fetchone()[0]
    con.close()
    images = n_files  # every file is a distinct content
    assert 2 <= stored_e < images, f"the kill came too late to test a resume ({stored_e}/{images} embedded)"
    assert stored_e % 2 == 0  # whole batches only: a batch is committed in one transaction
    assert stored_h == stored_e

    done = subprocess.run(maya_dedup_command() + args, capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    con = store.connect(data / "maya.duckdb", read_only=True)
    resumed = con.execute(
        "SELECT run_id, status, hashes_computed, hashes_reused, embeddings_computed, embeddings_reused "
        "FROM runs WHERE flow = 'dedup' ORDER BY run_id DESC LIMIT 1").fetchone()
    killed_status = con.execute("SELECT status FROM runs WHERE run_id = ?", [killed_run]).fetchone()[0]
    files_read = con.execute("SELECT files_read FROM dedup_runs WHERE run_id = ?", [resumed[0]]).fetchone()[0]
    con.close()
    assert resumed[1] == "completed" and killed_status == "interrupted"
    # only what was missing was computed
    assert resumed[2:] == (images - stored_h, stored_h, images - stored_e, stored_e)
    assert files_read == 0  # the killed run had identified every file already

    uninterrupted = run_dedup(photos, DedupOptions(mode="hybrid", **thresholds), model=str(tiny_clip_dir),
                              batch_size=2)
    resumed_report = json.loads((tmp_path / "resumed.json").read_text())
    assert _shape(resumed_report) == _shape(uninterrupted.report)
    # each picture with its JPEG copy
    assert sorted(len(g["members"]) for g in resumed_report["groups"]) == [2] * 8


def _shape(report):
    return ([(g["keep"], [(m["path"], m["phash_distance"], m["exact"], round(m["clip_similarity"], 4))
                          for m in g["members"]]) for g in report["groups"]], report["errors"])
