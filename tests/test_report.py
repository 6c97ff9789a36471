"""The report: real PNGs drawn from the stored numbers, a self-contained HTML page, a Markdown twin."""

import base64
import io
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from maya import store
from maya.report import plots
from maya.evaluation.metrics import confusion, decide
from maya.report.study import ReportError, write_report, write_report_files
from tests.demo_db import demo_store  # noqa: F401  (fixture)

pytestmark = pytest.mark.slow

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _is_png(data: bytes) -> bool:
    if not data.startswith(PNG_SIGNATURE):
        return False
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return im.format == "PNG" and im.width > 100 and im.height > 100


@pytest.fixture(scope="module")
def report(demo_store, tmp_path_factory):  # noqa: F811
    return write_report_files(demo_store.db_path, out_dir=tmp_path_factory.mktemp("report"))


@pytest.fixture(scope="module")
def con(demo_store):  # noqa: F811
    c = store.connect(demo_store.db_path, read_only=True)
    yield c
    c.close()


def test_default_run_is_the_latest_completed_evaluate_run(report, demo_store):  # noqa: F811
    assert report.run_id == demo_store.rerun


def test_html_embeds_real_pngs_and_names_the_files_next_to_it(report):
    page = report.html.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    figures = re.findall(r'<img src="data:image/png;base64,([^"]+)"[^>]*data-file="([^"]+)"', page)
    assert len(figures) == len(report.pictures) == 6
    for b64, name in figures:
        embedded = base64.b64decode(b64)
        assert _is_png(embedded), name
        on_disk = report.html.parent / name
        assert on_disk.exists() and on_disk.read_bytes() == embedded
    # every <img> is embedded: the page needs nothing else to display
    srcs = re.findall(r'<img src="([^"]+)"', page)
    assert srcs and all(s.startswith("data:image/") for s in srcs)
    thumbs = [s for s in srcs if s.startswith("data:image/jpeg;base64,")]
    assert thumbs, "no thumbnails of mistakes"
    with Image.open(io.BytesIO(base64.b64decode(thumbs[0].split(",", 1)[1]))) as im:
        assert im.format == "JPEG" and max(im.size) <= 112


def test_markdown_links_exist_relative_to_it(report):
    md = report.markdown.read_text(encoding="utf-8")
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len([x for x in links if x.endswith(".png")]) == 6
    assert any(x.startswith("thumbs/") for x in links)
    for link in links:
        target = report.markdown.parent / link
        assert target.exists(), link
        if link.endswith(".png"):
            assert _is_png(target.read_bytes()), link


def test_page_says_which_split_is_which_and_shows_the_run(report, con, demo_store):  # noqa: F811
    page = report.html.read_text(encoding="utf-8")
    assert "chosen on the <b>val</b> split" in page and "held-out <b>test</b> split" in page
    for method in ("phash", "clip", "hybrid", "cascade"):
        assert f"<td class=\"text\">{method}</td>" in page
    for head in ("ROC-AUC", "AP", "R@P≥.99", "Recall per transformation kind", "Worst mistakes",
                 "Run parameters and code version", "Reruns"):
        assert head in page, head
    code_version = con.execute("SELECT code_version FROM runs WHERE run_id = ?", [report.run_id]).fetchone()[0]
    assert code_version in page
    # the rerun is compared with the first run of the same dataset: identical metric rows
    assert f"run {demo_store.repeat_runs[0]}: identical metric rows" in page
    # the summary's test F1 is the stored selected test F1
    f1 = con.execute("SELECT f1 FROM metrics WHERE run_id = ? AND split = 'test' AND selected AND method = 'clip'",
                     [report.run_id]).fetchone()[0]
    assert re.search(r'<td class="text">clip</td><td class="text">[^<]*</td>(<td>[^<]*</td>){3}<td>'
                     + re.escape(f"{f1:.3f}") + "</td>", page)


def _scores(con, run_id):
    got = con.execute(
        """SELECT s.phash_distance, s.clip_similarity, p.label FROM scores s JOIN pairs p USING (dataset, pair_id)
           WHERE s.run_id = ? AND p.split = 'test' ORDER BY s.pair_id""", [run_id]).fetchnumpy()
    return (np.asarray(got["phash_distance"], dtype=np.int64), np.asarray(got["clip_similarity"], dtype=np.float64),
            np.asarray(got["label"], dtype=bool))


def test_a_plotted_point_is_re_derived_from_the_stored_scores(con, report, tmp_path):
    run = report.run_id
    pic = plots.plot_f1_vs_clip_threshold(con, run, tmp_path / "f1.png")
    assert _is_png(pic.path.read_bytes())
    t, f1 = pic.data["clip"]["test"]
    d, s, y = _scores(con, run)
    # the peak of the clip-only curve and a point on its slope, recomputed from the per-pair scores
    k_peak = int(np.argmax(f1))
    k_slope = int(np.flatnonzero((f1 > 0.1) & (f1 < f1.max() - 0.05))[-1])
    for k in (k_peak, k_slope):
        c = confusion(decide(d, s, -1, 64, t[k]), y)
        assert f1[k] == pytest.approx(c.f1, abs=1e-12), t[k]
    # and one point of the chosen Hybrid curve
    sel = pic.data["selected"]["hybrid"]
    th, fh = pic.data["hybrid"][sel["phash_threshold"]]
    k = int(np.argmin(np.abs(th - sel["clip_threshold"])))
    c = confusion(decide(d, s, -1, sel["phash_threshold"], th[k]), y)
    assert fh[k] == pytest.approx(c.f1, abs=1e-12) == pytest.approx(sel["test_f1"], abs=1e-12)


def test_trade_off_and_pr_points_come_from_the_stored_sweeps(con, report, tmp_path):
    run = report.run_id
    pic = plots.plot_f1_vs_clip_fraction(con, run, tmp_path / "tradeoff.png")
    d, s, y = _scores(con, run)
    i = len(pic.data["t_reject"]) // 3
    tr, tc = int(pic.data["t_reject"][i]), float(pic.data["t_clip"][i])
    c = confusion(decide(d, s, -1, tr, tc), y)
    assert pic.data["test_f1"][i] == pytest.approx(c.f1, abs=1e-12)
    assert pic.data["test_clip_fraction"][i] == pytest.approx(np.mean((d >= 0) & (d <= tr)))
    pr = plots.plot_pr_curves(con, run, tmp_path / "pr.png")
    ph = pr.data["phash"]
    c = confusion(decide(d, s, 10, 10, np.inf), y)  # pHash only at d <= 10: row 10 of its sweep
    assert (c.recall, c.precision) in set(zip(ph["recall"], ph["precision"]))


def test_recall_by_kind_matches_a_direct_count(con, report):
    rk = plots.recall_by_kind(con, report.run_id)
    kind, v = max(rk["positive"].items(), key=lambda kv: kv[1]["n"])
    t = plots.selected_thresholds(con, report.run_id)["clip"]["clip_threshold"]
    got = con.execute(
        """SELECT count(*), avg((s.clip_similarity >= ?)::INT) FROM scores s JOIN pairs p USING (dataset, pair_id)
           WHERE s.run_id = ? AND p.split = 'test' AND p.label
           AND (CASE WHEN p.kind LIKE 'chain:%' THEN 'chain' ELSE p.kind END) = ?""",
        [t, report.run_id, kind]).fetchone()
    assert v["n"] == got[0] and v["clip"] == pytest.approx(got[1])


def test_stored_and_recomputed_method_summary_agree(con, report):
    """The report computes ROC-AUC etc. from the scores when a run has no method_summary rows; that must
    be what maya.evaluation.ranking gives on the same scores."""
    from maya.report.study import summary_rows

    rows = {r["method"]: r for r in summary_rows(con, report.run_id)}
    d, s, y = _scores(con, report.run_id)
    from sklearn.metrics import roc_auc_score

    assert rows["clip"]["roc_auc"] == pytest.approx(roc_auc_score(y, np.nan_to_num(s, nan=-2.0)))
    assert rows["phash"]["roc_auc"] == pytest.approx(roc_auc_score(y, -d))


def test_report_of_the_repeats_run_shows_stability(demo_store, tmp_path):  # noqa: F811
    html = write_report(demo_store.db_path, run_id=demo_store.repeats_run, out_dir=tmp_path)
    page = html.read_text(encoding="utf-8")
    assert "95% bootstrap CI" in page and "Repeats" in page
    assert _is_png((tmp_path / "stability.png").read_bytes())
    for run in demo_store.repeat_runs:
        assert f"<td class=\"text\">{run}</td>" in page


def test_default_output_folder_is_under_the_data_folder(demo_store):  # noqa: F811
    html = write_report(demo_store.db_path, run_id=demo_store.repeat_runs[1])
    assert html == demo_store.data_dir / "reports" / f"run-{demo_store.repeat_runs[1]}" / "report.html"


def test_unknown_run_is_a_clear_error(demo_store, tmp_path):  # noqa: F811
    with pytest.raises(ReportError, match="no run 9999"):
        write_report(demo_store.db_path, run_id=9999, out_dir=tmp_path)


def test_report_command_prints_paths_without_prefect_or_torch(demo_store, tmp_path):  # noqa: F811
    code = (
        "import argparse, sys\n"
        "from maya.cli.report import add_report_parser\n"
        "common = argparse.ArgumentParser(add_help=False); common.add_argument('--data-dir')\n"
        "p = argparse.ArgumentParser(); sub = p.add_subparsers()\n"
        "add_report_parser(sub, [common])\n"
        "a = p.parse_args(sys.argv[1:]); rc = a.func(a)\n"
        "heavy = [m for m in ('prefect', 'torch', 'transformers') if m in sys.modules]\n"
        "print('HEAVY', heavy); sys.exit(rc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, "report", "--data-dir", str(demo_store.data_dir),
                          "--out", str(tmp_path)], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parent.parent)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout
    assert str(tmp_path / "report.html") in out.stdout and "pictures (6):" in out.stdout
    assert (tmp_path / "report.md").exists()
