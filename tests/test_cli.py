"""The command line as a user runs it: real subprocesses, a real DuckDB file, a tiny real CLIP."""

import json
import os
import subprocess
import sys

import pytest

#: The study's methods in the order SQL sorts them: plain, dihedral pHash, best pair of views.
STUDY_METHODS_SORTED = ("cascade", "cascade-dihedral", "cascade-views", "clip", "clip-views", "hybrid", "phash",
                        "phash-dihedral")

MAYA = [sys.executable, "-m", "maya.cli"]


def run(args, env_extra=None, **kw):
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run(MAYA + args, capture_output=True, text=True, env=env, timeout=600, **kw)


@pytest.fixture(scope="module")
def demo(tiny_clip_dir, photo_dir, tmp_path_factory):
    data = tmp_path_factory.mktemp("cli-data")
    env = {"MAYA_MODEL": str(tiny_clip_dir), "MAYA_DATA_DIR": str(data)}
    out = run(["demo", "--source", str(photo_dir), "--positives", "4"], env)
    return data, env, out


@pytest.mark.slow
def test_demo_exits_0_and_prints_the_summary(demo):
    data, env, out = demo
    assert out.returncode == 0, out.stderr
    for method in ("phash", "clip", "hybrid", "cascade"):
        assert f"\n{method} " in out.stdout
    assert "test_f1" in out.stdout and (data / "maya.duckdb").exists()
    # the database used, the next steps, progress of the long steps even when piped, no raw warnings
    assert f"database: {data / 'maya.duckdb'}" in out.stdout
    nxt = out.stdout[out.stdout.index("\nnext:"):]
    assert "maya report" in nxt and "maya pairs show --dataset demo" in nxt and "maya dedup ~/Pictures" in nxt
    assert "maya: pairs: edited copies: " in out.stderr and "maya: features" in out.stderr
    assert "warnings.warn" not in out.stderr and "Warning" not in out.stderr


@pytest.mark.slow
def test_sql_answers_in_every_format(demo):
    data, env, _ = demo
    q = "select method, count(*) as n from metrics where split='test' and selected group by method order by method"
    table = run(["sql", q], env)
    assert table.returncode == 0, table.stderr
    assert "cascade" in table.stdout and "(8 rows)" in table.stdout
    rows = json.loads(run(["sql", q, "--format", "json"], env).stdout)
    assert rows == [{"method": m, "n": 1} for m in STUDY_METHODS_SORTED]
    csv_out = run(["sql", q, "--format", "csv"], env).stdout.splitlines()
    assert csv_out[0] == "method,n" and len(csv_out) == 9


@pytest.mark.slow
def test_second_evaluate_computes_nothing(demo):
    data, env, _ = demo
    out = run(["evaluate", "--dataset", "demo"], env)
    assert out.returncode == 0, out.stderr
    assert "hashes: 0 computed" in out.stdout and "embeddings: 0 computed" in out.stdout
    runs = run(["sql", "select count(*) as n from runs where status='completed'", "--format", "json"], env)
    assert json.loads(runs.stdout) == [{"n": 2}]


@pytest.mark.slow
def test_repeats_print_mean_std_and_interval(demo):
    data, env, _ = demo
    out = run(["evaluate", "--dataset", "demo", "--repeats", "2"], env)
    assert out.returncode == 0, out.stderr
    assert "stability over 2 seeds" in out.stdout and "95% bootstrap CI" in out.stdout
    rows = json.loads(run(["sql", "select method, repeats from metrics where split='stability' order by method",
                           "--format", "json"], env).stdout)
    assert rows == [{"method": m, "repeats": 2} for m in STUDY_METHODS_SORTED]


@pytest.mark.slow
def test_usage_errors_are_one_line_and_exit_2(tmp_path):
    out = run(["evaluate", "--dataset", "nope", "--data-dir", str(tmp_path)])
    assert out.returncode == 2
    assert out.stderr.startswith("maya: error: unknown dataset 'nope'") and "Traceback" not in out.stderr
    out = run(["pairs", "build", str(tmp_path / "missing"), "--dataset", "x", "--data-dir", str(tmp_path)])
    assert out.returncode == 2 and "no such folder" in out.stderr and "Traceback" not in out.stderr
    out = run(["sql", "select * from nowhere", "--data-dir", str(tmp_path)])
    assert out.returncode != 0 and "Traceback" not in out.stderr


def test_read_only_commands_do_not_import_prefect_or_torch(tmp_path):
    code = ("import sys; from maya.cli import main; "
            f"main(['config', '--data-dir', {str(tmp_path)!r}]); "
            "bad = [m for m in ('prefect', 'torch', 'transformers') if m in sys.modules]; "
            "assert not bad, bad")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert f"data_dir = {tmp_path}" in out.stdout


def test_config_shows_env_and_flag_precedence(tmp_path):
    out = run(["config", "--model", "flag-model"], {"MAYA_MODEL": "env-model", "MAYA_BATCH_SIZE": "7"})
    assert "model = flag-model" in out.stdout and "batch_size = 7" in out.stdout
    bad = run(["config"], {"MAYA_BATCH_SIZE": "lots"})
    assert bad.returncode != 0 and "MAYA_BATCH_SIZE must be an integer" in bad.stderr


@pytest.mark.slow
def test_demo_without_the_default_model_says_so_and_runs_on_efficientnet(photo_dir, tmp_path):
    env = {"MAYA_DATA_DIR": str(tmp_path), "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    out = run(["demo", "--source", str(photo_dir), "--positives", "2"], env)
    assert out.returncode == 0, out.stderr
    notes = [line for line in out.stderr.splitlines() if "efficientnet-lite0" in line]
    assert len(notes) == 1 and "openai/clip-vit-base-patch32 cannot be loaded" in notes[0]
    assert "model efficientnet-lite0" in out.stdout and "cascade" in out.stdout
    assert "\nefficientnet " in out.stdout and "\nclip " not in out.stdout  # the method named after the model
    assert "\nefficientnet-views " in out.stdout and "\nclip-views " not in out.stdout  # and its views variant
    # evaluate never falls back: it names both options and stops before any work
    ev = run(["evaluate", "--dataset", "demo"], env)
    assert ev.returncode == 2 and "--model efficientnet-lite0" in ev.stderr and "Traceback" not in ev.stderr


@pytest.mark.slow
def test_imported_pairs_are_evaluated_with_all_four_methods(demo, photo_dir, tmp_path):
    """An external labelled pair set: CSV with paths relative to it, then `maya evaluate` on it."""
    from PIL import Image

    data, env, _ = demo
    photos = sorted(p for p in photo_dir.iterdir())
    rows = ["a,b,label"]
    for i, p in enumerate(photos):
        with Image.open(p) as im:
            im.convert("RGB").resize((im.width // 2, im.height // 2)).save(tmp_path / f"small_{i}.png")
        rows.append(f"{p},small_{i}.png,1")
        rows.append(f"{p},{photos[(i + 1) % len(photos)]},0")
    rows.append("missing.jpg,small_0.png,1")  # reported, the rest imported
    (tmp_path / "pairs.csv").write_text("\n".join(rows) + "\n")
    imp = run(["pairs", "import", str(tmp_path / "pairs.csv"), "--dataset", "ext"], env)
    assert imp.returncode == 0, imp.stderr
    assert "missing.jpg" in imp.stderr and f"{2 * len(photos)} pairs" in imp.stdout
    ev = run(["evaluate", "--dataset", "ext"], env)
    assert ev.returncode == 0, ev.stderr
    got = json.loads(run(["sql", "select distinct method from metrics m join runs r using (run_id) "
                                 "where r.dataset='ext' and m.split='test' and m.selected order by 1",
                          "--format", "json"], env).stdout)
    assert [r["method"] for r in got] == list(STUDY_METHODS_SORTED)
