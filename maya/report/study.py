"""One page per run: the summary table, the pictures, per-kind recall, the worst errors, the parameters.

``write_report`` reads the store read-only and writes, under ``<data_dir>/reports/run-<id>/``:
``report.html`` (self-contained: pictures and thumbnails embedded as data URIs, opens anywhere),
``report.md`` (links the PNGs and thumbnails next to it), the pictures as PNG files and ``thumbs/``.
"""

from __future__ import annotations

from maya.errors import MayaError

import base64
import html
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from maya import store

#: Worst errors shown per (method, false positive / false negative).
WORST_PER_METHOD = 5
THUMB_SIDE = 112


class ReportError(MayaError, ValueError):
    """The report cannot be made (no such run, no completed evaluate run, old database, ...)."""


@dataclass
class ReportFiles:
    html: Path
    markdown: Path
    pictures: list[Path] = field(default_factory=list)
    thumbnails: list[Path] = field(default_factory=list)
    run_id: int = 0


# ---------------------------------------------------------------------------------------------- reads


def latest_evaluate_run(con) -> int:
    got = con.execute(
        "SELECT max(run_id) FROM runs WHERE status = 'completed' AND flow = 'evaluate'").fetchone()[0]
    if got is None:
        raise ReportError("no completed evaluate run in this store: run `maya demo` or `maya evaluate` first")
    return int(got)


def run_info(con, run_id: int) -> dict:
    cur = con.execute("SELECT * FROM runs WHERE run_id = ?", [run_id])
    row = cur.fetchone()
    if row is None:
        raise ReportError(f"no run {run_id} in this store")
    info = dict(zip([d[0] for d in cur.description], row))
    try:
        info["parameters"] = json.loads(info["parameters"]) if info.get("parameters") else {}
    except (TypeError, ValueError):
        pass
    return info


def summary_rows(con, run_id: int) -> list[dict]:
    """Per method: chosen thresholds, val F1, test P/R/F1/clip fraction, the threshold-free measures on
    test (stored method_summary rows, or computed from the stored scores when the run has none) and the
    best test F1 anywhere on the sweep (an oracle, for comparison)."""
    from maya.report.plots import selected_thresholds

    sel = selected_thresholds(con, run_id)
    ms = _method_summary(con, run_id, sel)
    best = dict(con.execute(
        "SELECT method, max(f1) FROM metrics WHERE run_id = ? AND split = 'test' GROUP BY method", [run_id]
    ).fetchall())
    rows = []
    for m, t in sel.items():
        s = ms.get(("test", m), {})
        rows.append({"method": m, **t, "test_best_f1": best.get(m),
                     **{k: s.get(k) for k in ("roc_auc", "average_precision", "recall_at_p99", "threshold_at_p99",
                                              "precision_at_val_p99_threshold", "recall_at_val_p99_threshold")}})
    return rows


def _method_summary(con, run_id: int, sel: dict) -> dict[tuple[str, str], dict]:
    cur = con.execute("SELECT * FROM method_summary WHERE run_id = ?", [run_id])
    names = [d[0] for d in cur.description]
    stored = [dict(zip(names, r)) for r in cur.fetchall()]
    if stored:
        return {(r["split"], r["method"]): r for r in stored}
    # Runs made before the flow stored these: compute them from the stored scores (same function).
    from maya.evaluation.selection import MethodResult
    from maya.evaluation.ranking import method_summary

    sc = con.execute(
        """SELECT s.phash_distance, s.clip_similarity, p.label, p.split FROM scores s
           JOIN pairs p USING (dataset, pair_id) WHERE s.run_id = ? ORDER BY s.pair_id""", [run_id]).fetchnumpy()
    d = np.asarray(np.ma.filled(sc["phash_distance"], -1), dtype=np.int64)
    s = np.asarray(np.ma.filled(sc["clip_similarity"], np.nan), dtype=np.float64)
    results = [MethodResult(m, {k: t[k] for k in ("phash_accept", "phash_threshold", "clip_threshold")},
                            t["val_f1"], t["test_precision"], t["test_recall"], t["test_f1"],
                            t["test_clip_fraction"], 0) for m, t in sel.items()]
    cols = method_summary(d, s, np.asarray(sc["label"], dtype=bool), sc["split"], results)
    out = {}
    for i in range(len(cols["method"])):
        row = {k: (None if np.ma.is_masked(v[i]) else v[i].item() if hasattr(v[i], "item") else v[i])
               for k, v in cols.items()}
        out[(row["split"], row["method"])] = row
    return out


def split_sizes(con, run_id: int) -> list[tuple]:
    return con.execute(
        """SELECT p.split, count(*), sum(p.label::INT), count(*) - sum(p.label::INT) FROM scores s
           JOIN pairs p USING (dataset, pair_id) WHERE s.run_id = ? GROUP BY p.split ORDER BY p.split""",
        [run_id]).fetchall()


def worst_errors(con, run_id: int, method: str, outcome: str, limit: int = WORST_PER_METHOD) -> list[dict]:
    """The most confident mistakes of ``method`` on the test split: false positives ('fp') with the highest
    ranking score, false negatives ('fn') with the lowest (maya.evaluation.ranking.ranking_score)."""
    from maya.evaluation.ranking import ranking_score

    cur = con.execute(
        """SELECT pair_id, a, b, kind, phash_distance, clip_similarity, t_accept, t_reject, t_clip
           FROM pair_decisions WHERE run_id = ? AND method = ? AND split = 'test' AND outcome = ?
           ORDER BY pair_id""", [run_id, method, outcome])
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, r)) for r in cur.fetchall()]
    if not rows:
        return []
    d = np.array([-1 if r["phash_distance"] is None else r["phash_distance"] for r in rows])
    s = np.array([np.nan if r["clip_similarity"] is None else r["clip_similarity"] for r in rows], dtype=float)
    t0 = rows[0]
    thresholds = {"phash_accept": t0["t_accept"] if t0["t_accept"] >= 0 else None,
                  "phash_threshold": t0["t_reject"], "clip_threshold": t0["t_clip"]}
    score = ranking_score(method, d, s, thresholds)
    order = np.lexsort((np.array([r["pair_id"] for r in rows]), -score if outcome == "fp" else score))
    return [rows[i] for i in order[:limit]]


def reruns(con, run_id: int) -> list[dict]:
    """Earlier completed evaluate runs on the same dataset and model, and whether their metric rows are
    identical to this run's (the same seed must reproduce the same numbers on the CPU)."""
    info = con.execute("SELECT dataset, model FROM runs WHERE run_id = ?", [run_id]).fetchone()
    others = con.execute(
        """SELECT run_id FROM runs WHERE flow = 'evaluate' AND status = 'completed' AND dataset = ? AND model = ?
           AND run_id <> ? ORDER BY run_id DESC LIMIT 5""", [info[0], info[1], run_id]).fetchall()
    cols = ("split, method, phash_threshold, phash_accept, clip_threshold, tp, fp, fn, tn, precision, recall, f1, "
            "clip_fraction, selected")
    out = []
    for (other,) in others:
        diff = con.execute(
            f"""SELECT count(*) FROM ((SELECT {cols} FROM metrics WHERE run_id = $a EXCEPT ALL
                                       SELECT {cols} FROM metrics WHERE run_id = $b)
                                      UNION ALL (SELECT {cols} FROM metrics WHERE run_id = $b EXCEPT ALL
                                       SELECT {cols} FROM metrics WHERE run_id = $a))""",
            {"a": run_id, "b": other}).fetchone()[0]
        out.append({"run_id": other, "differing_rows": int(diff)})
    return out


def stability_rows(con, run_id: int) -> tuple[int | None, list[tuple]]:
    """(parent run, its stability rows) for an 'evaluate-repeats' run or for one of its repeats."""
    flow, parent = con.execute("SELECT flow, parent_run_id FROM runs WHERE run_id = ?", [run_id]).fetchone()
    pid = run_id if flow == "evaluate-repeats" else parent
    if pid is None:
        return None, []
    rows = con.execute(
        """SELECT method, repeats, f1, f1_std, f1_ci_low, f1_ci_high, precision, recall, clip_fraction
           FROM metrics WHERE run_id = ? AND split = 'stability' ORDER BY method""", [pid]).fetchall()
    return pid, rows


# ---------------------------------------------------------------------------------------------- writing


def _fmt(v, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, (float, np.floating)):
        if np.isnan(v):
            return "–"
        if np.isinf(v):
            return "+inf" if v > 0 else "-inf"
        return f"{v:.{digits}f}"
    return str(v)


def _thresholds_text(m: str, t: dict) -> str:
    parts = []
    if t.get("phash_accept") is not None:
        parts.append(f"accept d ≤ {t['phash_accept']}")
    if t.get("phash_threshold") is not None:
        parts.append(f"d ≤ {t['phash_threshold']}" if m == "phash" else f"reject d > {t['phash_threshold']}")
    if t.get("clip_threshold") is not None:
        parts.append(f"sim ≥ {t['clip_threshold']:.3f}")
    return ", ".join(parts)


def _thumbnail(path: str | None) -> bytes | None:
    from PIL import Image

    from maya.io.images import ImageLoadError, load_image

    if not path:
        return None
    try:
        img = load_image(path, min_side=THUMB_SIDE).image
    except (ImageLoadError, OSError):
        return None
    img.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


class _Table:
    """A table written both as HTML and as Markdown."""

    def __init__(self, columns: list[str], rows: list[list[str]], text_columns: int = 1):
        self.columns, self.rows, self.text_columns = columns, rows, text_columns

    def html(self) -> str:
        def td(j, v):
            cls = ' class="text"' if j < self.text_columns else ""
            return f"<td{cls}>{html.escape(str(v))}</td>"

        text_cls = ' class="text"'
        head = "".join(f"<th{text_cls if j < self.text_columns else ''}>{html.escape(c)}</th>"
                       for j, c in enumerate(self.columns))
        body = "".join("<tr>" + "".join(td(j, v) for j, v in enumerate(r)) + "</tr>" for r in self.rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def markdown(self) -> str:
        esc = md_text

        lines = ["| " + " | ".join(esc(c) for c in self.columns) + " |",
                 "|" + "|".join("---" for _ in self.columns) + "|"]
        lines += ["| " + " | ".join(esc(v) for v in r) + " |" for r in self.rows]
        return "\n".join(lines)


_MD_SPECIAL = frozenset("\\`*_[]<>|~!&#")


def md_text(value) -> str:
    """``value`` as inert Markdown inline text: one printable line (control characters escaped), with
    every character Markdown or inline HTML would act on (``\\ ` * _ [ ] < > | ~ ! & #``) backslash-escaped.
    What report.md inlines from the store (dataset names, kinds, parameters, paths) goes through it."""
    from maya.io.printable import printable

    return "".join("\\" + c if c in _MD_SPECIAL else c for c in printable(value))


def _md_fence(text: str) -> str:
    """A code fence longer than any run of backticks in ``text`` (so ``text`` cannot close it)."""
    longest = max((len(m) for m in re.findall("`+", text)), default=0)
    return "`" * max(3, longest + 1)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.86em}
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:right}th{background:#f3f3f3}
td.text,th.text{text-align:left}td.text{white-space:nowrap}
.note{background:#f6f8fa;border-left:4px solid #1f78b4;padding:.5em 1em;font-size:.92em}
figure{margin:1.2em 0}figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:.88em;color:#555}
.pairs{display:flex;flex-wrap:wrap;gap:.8em}.pair{border:1px solid #ddd;padding:.4em;font-size:.78em;width:240px;overflow-wrap:anywhere}
.pair img{width:112px;height:112px;object-fit:contain;background:#f0f0f0}
pre{background:#f6f8fa;padding:.6em;font-size:.8em;overflow-x:auto}
"""


def write_report(db_path: str | Path, run_id: int | None = None, out_dir: str | Path | None = None) -> Path:
    """Write the report of ``run_id`` (default: the latest completed evaluate run); returns the HTML path.
    See :func:`write_report_files` for everything written."""
    return write_report_files(db_path, run_id, out_dir).html


def write_report_files(db_path: str | Path, run_id: int | None = None,
                       out_dir: str | Path | None = None) -> ReportFiles:
    """Write report.html (self-contained), report.md, the PNGs and thumbnails of one run.

    Args:
        db_path: the DuckDB file (opened read-only).
        run_id: an 'evaluate' run, or an 'evaluate-repeats' run (its stability and repeats); default the
            latest completed evaluate run.
        out_dir: default ``<db_path's folder>/reports/run-<id>``.
    Raises:
        ReportError: no such run / no completed run; StoreError / StoreLockedError from maya.store.
    """
    import duckdb

    db_path = Path(db_path)
    con = store.connect(db_path, read_only=True)
    try:
        try:
            con.execute("SELECT 1 FROM pair_decisions LIMIT 0")
        except duckdb.CatalogException:
            raise ReportError(
                f"{db_path} predates the report views (sql/views.sql); open it once for writing "
                f"(any `maya evaluate`) to add them") from None
        rid = latest_evaluate_run(con) if run_id is None else int(run_id)
        info = run_info(con, rid)
        out = Path(out_dir) if out_dir else db_path.parent / "reports" / f"run-{rid}"
        out.mkdir(parents=True, exist_ok=True)
        if info["flow"] == "evaluate-repeats":
            return _write_repeats_report(con, info, out)
        if info["flow"] != "evaluate":
            raise ReportError(f"run {rid} is a {info['flow']!r} run; reports are made for evaluate runs")
        if info["status"] != "completed":
            raise ReportError(f"run {rid} is {info['status']}, not completed")
        return _write_evaluate_report(con, info, out)
    finally:
        con.close()


def _run_section(info: dict) -> tuple[str, str]:
    keys = ("run_id", "flow", "dataset", "model", "code_version", "started_at", "finished_at", "status",
            "hashes_computed", "hashes_reused", "embeddings_computed", "embeddings_reused", "images_failed",
            "parent_run_id", "flow_run_id")
    t = _Table(["field", "value"], [[k, _fmt(info.get(k))] for k in keys if info.get(k) is not None], text_columns=2)
    params = json.dumps(info.get("parameters"), indent=2, sort_keys=True, default=str)
    h = f"<h2>Run parameters and code version</h2>{t.html()}<pre>{html.escape(params)}</pre>"
    fence = _md_fence(params)
    md = f"## Run parameters and code version\n\n{t.markdown()}\n\n{fence}json\n{params}\n{fence}\n"
    return h, md


def _write_evaluate_report(con, info: dict, out: Path) -> ReportFiles:
    from maya.report import plots

    rid = info["run_id"]
    rows = summary_rows(con, rid)
    ap = {r["method"]: r["average_precision"] for r in rows}
    pictures: list[plots.Picture] = []
    skipped: list[str] = []
    for fn in plots.EVALUATE_PICTURES:
        name = fn.__name__.removeprefix("plot_")
        try:
            kw = {"average_precision": ap} if fn is plots.plot_pr_curves else {}
            pictures.append(fn(con, rid, out / f"{name}.png", **kw))
        except ValueError as e:  # e.g. a run evaluated without the hybrid method
            skipped.append(f"{name}: {e}")
    sizes = split_sizes(con, rid)

    h: list[str] = []
    md: list[str] = []
    title = f"Maya report — run {rid}, dataset {info['dataset']!r}"
    h.append(f"<h1>{html.escape(title)}</h1>")
    md.append(f"# {md_text(title)}\n")
    size_txt = "; ".join(f"<b>{sp}</b>: {n} pairs ({p} duplicates, {q} non-duplicates)" for sp, n, p, q in sizes)
    note = ("Thresholds are chosen on the <b>val</b> split (best F1) and every other number is measured on the "
            "held-out <b>test</b> split, whose originals never appear in val. " + size_txt + ". "
            "ROC-AUC, AP and recall at precision ≥ 0.99 rank all test pairs by each method's score (pHash: "
            "−distance; CLIP: similarity; Hybrid: similarity inside the pre-filter; Cascade: accept band first). "
            "“R@P≥.99” is read on test with the best threshold for test (an oracle, as published); "
            "“at val thr.” applies the threshold found on val (the honest number). “best F1 (oracle)” is the "
            "best F1 anywhere on the test sweep, an upper bound, not a result.")
    h.append(f'<p class="note">{note}</p>')
    md.append(_strip_tags(note) + "\n")

    cols = ["method", "thresholds (chosen on val)", "val F1", "test precision", "test recall", "test F1",
            "clip fraction", "ROC-AUC", "AP", "R@P≥.99", "P / R at val thr.", "best F1 (oracle)"]
    table = _Table(cols, [[
        r["method"], _thresholds_text(r["method"], r), _fmt(r["val_f1"]), _fmt(r["test_precision"]),
        _fmt(r["test_recall"]), _fmt(r["test_f1"]), _fmt(r["test_clip_fraction"], 2), _fmt(r["roc_auc"]),
        _fmt(r["average_precision"]), _fmt(r["recall_at_p99"]),
        f"{_fmt(r['precision_at_val_p99_threshold'])} / {_fmt(r['recall_at_val_p99_threshold'])}",
        _fmt(r["test_best_f1"])] for r in rows], text_columns=2)
    h.append("<h2>Summary (test split)</h2>" + table.html())
    md.append("## Summary (test split)\n\n" + table.markdown() + "\n")
    _collection_section(con, info, h, md)

    pid, stab = stability_rows(con, rid)
    if stab:
        t = _stability_table(stab)
        h.append(f"<h2>Stability (repeats run {pid})</h2>{t.html()}")
        md.append(f"## Stability (repeats run {pid})\n\n{t.markdown()}\n")
    rr = reruns(con, rid)
    if rr:
        lines = [f"run {r['run_id']}: " + ("identical metric rows" if r["differing_rows"] == 0
                                            else f"{r['differing_rows']} metric rows differ") for r in rr]
        txt = "Earlier runs on the same dataset and model — " + "; ".join(lines) + "."
        h.append(f"<h2>Reruns</h2><p>{html.escape(txt)}</p>")
        md.append(f"## Reruns\n\n{txt}\n")

    h.append("<h2>Pictures</h2>")
    md.append("## Pictures\n")
    for p in pictures:
        uri = _data_uri(p.path.read_bytes(), "image/png")
        h.append(f'<figure id="{p.name}"><img src="{uri}" alt="{html.escape(p.title)}" '
                 f'data-file="{html.escape(p.path.name)}"><figcaption><b>{html.escape(p.title)}.</b> '
                 f'{html.escape(p.caption)}</figcaption></figure>')
        md.append(f"### {p.title}\n\n![{p.title}]({p.path.name})\n\n{p.caption}\n")
    for s in skipped:
        h.append(f"<p>Not drawn: {html.escape(s)}</p>")
        md.append(f"Not drawn: {md_text(s)}\n")

    rk = plots.recall_by_kind(con, rid)
    methods = rk["methods"]
    kt = _Table(["kind", "test pairs"] + [f"{m} recall" for m in methods],
                [[k, v["n"]] + [_fmt(v.get(m)) for m in methods] for k, v in sorted(rk["positive"].items())]
                + [[f"{k} (false-positive rate)", v["n"]] + [_fmt(v.get(m)) for m in methods]
                   for k, v in sorted(rk["negative"].items())])
    h.append("<h2>Recall per transformation kind (test split)</h2>" + kt.html())
    md.append("## Recall per transformation kind (test split)\n\n" + kt.markdown() + "\n")
    cost = _views_cost(con, rid)
    if cost:
        h.append(f"<p>{html.escape(cost)}</p>")
        md.append(cost + "\n")

    thumbs = _errors_section(con, rid, [r["method"] for r in rows], out, h, md)
    rh, rmd = _run_section(info)
    h.append(rh)
    md.append(rmd)
    return _finish(out, title, h, md, [p.path for p in pictures], thumbs, rid)


def _errors_section(con, rid: int, methods: list[str], out: Path, h: list[str], md: list[str]) -> list[Path]:
    shas: set[str] = set()
    errors = {}
    for m in methods:
        for oc in ("fp", "fn"):
            errors[(m, oc)] = worst_errors(con, rid, m, oc)
            for r in errors[(m, oc)]:
                shas.update((r["a"], r["b"]))
    paths = store.image_paths(con, shas)
    thumbs_dir = out / "thumbs"
    written: dict[str, Path | None] = {}

    def thumb(sha: str) -> Path | None:
        if sha not in written:
            data = _thumbnail(paths.get(sha))
            if data is None:
                written[sha] = None
            else:
                thumbs_dir.mkdir(exist_ok=True)
                p = thumbs_dir / f"{sha[:16]}.jpg"
                p.write_bytes(data)
                written[sha] = p
        return written[sha]

    h.append("<h2>Worst mistakes (test split)</h2><p>False positives with the highest score and false "
             "negatives with the lowest, per method, at the chosen thresholds. Left: image a, right: image b.</p>")
    md.append("## Worst mistakes (test split)\n")
    for (m, oc), rows in errors.items():
        what = "false positives (non-duplicates matched)" if oc == "fp" else "false negatives (duplicates missed)"
        h.append(f"<h3>{html.escape(m)}: {what}</h3>")
        md.append(f"### {md_text(m)}: {what}\n")
        if not rows:
            h.append("<p>none</p>")
            md.append("none\n")
            continue
        cells = []
        for r in rows:
            cap = (f"pair {r['pair_id']} · {r['kind']} · d={_fmt(r['phash_distance'])} · "
                   f"sim={_fmt(r['clip_similarity'])}")
            imgs = []
            md_imgs = []
            for sha in (r["a"], r["b"]):
                p = thumb(sha)
                if p is None:
                    imgs.append(f'<span title="{html.escape(str(paths.get(sha)))}">(image unavailable)</span>')
                    md_imgs.append("(image unavailable)")
                else:
                    imgs.append(f'<img src="{_data_uri(p.read_bytes(), "image/jpeg")}" alt="{sha[:12]}" '
                                f'title="{html.escape(str(paths.get(sha)))}">')
                    md_imgs.append(f"![{sha[:12]}](thumbs/{p.name})")
            cells.append(f'<div class="pair">{"".join(imgs)}<br>{html.escape(cap)}</div>')
            md.append(f"- {' '.join(md_imgs)} {md_text(cap)}")
        h.append(f'<div class="pairs">{"".join(cells)}</div>')
        md.append("")
    return [p for p in written.values() if p is not None]


def _collection_section(con, info: dict, h: list[str], md: list[str]) -> None:
    """Grouping metrics of dedup over the dataset's collection (``collection_metrics``), newest first."""
    import duckdb

    try:
        rows = con.execute(
            "SELECT metrics_id, dedup_run_id, rule_source, files, \"precision\", recall, f1, pair_f1, largest_group, "
            "largest_true_group, chained_groups, mixed_groups FROM collection_metrics WHERE dataset = ? "
            "ORDER BY metrics_id DESC LIMIT 6", [info.get("dataset")]).fetchall()
    except duckdb.CatalogException:  # a store from before collections, opened read-only
        return
    if not rows:
        return
    t = _Table(["dedup run", "threshold source", "files", "precision", "recall", "F1", "pair F1 (cascade, test)",
                "largest group (truth)", "chained", "mixed"],
               [[str(r[1]), r[2], str(r[3]), _fmt(r[4]), _fmt(r[5]), _fmt(r[6]), _fmt(r[7]), f"{r[8]} ({r[9]})",
                 str(r[10]), str(r[11])] for r in rows], text_columns=2)
    title = "Collection: dedup's groups against the truth (pairwise over all file pairs)"
    h.append(f"<h2>{title}</h2>{t.html()}")
    md.append(f"## {title}\n\n{t.markdown()}\n")


def _stability_table(stab: list[tuple]) -> _Table:
    return _Table(["method", "repeats", "test F1 mean", "std", "95% bootstrap CI", "precision (mean)",
                   "recall (mean)", "clip fraction (mean)"],
                  [[m, k, _fmt(f1, 4), _fmt(sd, 4), f"[{_fmt(lo, 4)}, {_fmt(hi, 4)}]", _fmt(p), _fmt(r), _fmt(cf, 2)]
                   for m, k, f1, sd, lo, hi, p, r, cf in stab])


def _write_repeats_report(con, info: dict, out: Path) -> ReportFiles:
    from maya.report import plots

    rid = info["run_id"]
    title = f"Maya stability report — run {rid}, dataset {info['dataset']!r}"
    h = [f"<h1>{html.escape(title)}</h1>"]
    md = [f"# {md_text(title)}\n"]
    note = ("Each repeat regenerates the pairs with another seed (other edits, other negatives, another val/test "
            "split of the originals), chooses thresholds on its val split and reports its test split. Below: the "
            "spread of those test F1 values (sample std, 95 % percentile-bootstrap interval of the mean).")
    h.append(f'<p class="note">{html.escape(note)}</p>')
    md.append(note + "\n")
    _, stab = stability_rows(con, rid)
    t = _stability_table(stab)
    h.append("<h2>Stability</h2>" + t.html())
    md.append("## Stability\n\n" + t.markdown() + "\n")
    children = con.execute(
        """SELECT r.run_id, r.dataset, r.status, m.method, m.f1 FROM runs r
           LEFT JOIN metrics m ON m.run_id = r.run_id AND m.split = 'test' AND m.selected
           WHERE r.parent_run_id = ? ORDER BY r.run_id, m.method""", [rid]).fetchall()
    methods = sorted({c[3] for c in children if c[3]})
    per: dict[int, dict] = {}
    for run, ds, status, m, f1 in children:
        per.setdefault(run, {"dataset": ds, "status": status})[m] = f1
    ct = _Table(["run", "dataset", "status"] + [f"{m} test F1" for m in methods],
                [[r, v["dataset"], v["status"]] + [_fmt(v.get(m), 4) for m in methods] for r, v in per.items()],
                text_columns=3)
    h.append("<h2>Repeats</h2>" + ct.html())
    md.append("## Repeats\n\n" + ct.markdown() + "\n")
    pictures = []
    if stab:
        p = plots.plot_stability(con, rid, out / "stability.png")
        pictures.append(p.path)
        h.append(f'<figure id="{p.name}"><img src="{_data_uri(p.path.read_bytes(), "image/png")}" '
                 f'alt="{html.escape(p.title)}" data-file="{p.path.name}"><figcaption><b>{html.escape(p.title)}.'
                 f'</b> {html.escape(p.caption)}</figcaption></figure>')
        md.append(f"![{p.title}]({p.path.name})\n\n{p.caption}\n")
    rh, rmd = _run_section(info)
    h.append(rh)
    md.append(rmd)
    return _finish(out, title, h, md, pictures, [], rid)


def _strip_tags(text: str) -> str:
    import re

    return re.sub(r"</?b>", "**", text)


def _finish(out: Path, title: str, h: list[str], md: list[str], pictures: list[Path], thumbs: list[Path],
            rid: int) -> ReportFiles:
    page = (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>\n"
            + "\n".join(h) + "\n</body></html>\n")
    html_path = out / "report.html"
    md_path = out / "report.md"
    html_path.write_text(page, encoding="utf-8")
    md_path.write_text("\n".join(md) + "\n", encoding="utf-8")
    return ReportFiles(html=html_path, markdown=md_path, pictures=pictures, thumbnails=thumbs, run_id=rid)


def _views_cost(con, run_id: int) -> str | None:
    """One sentence on what the '*-dihedral' and '*-views' methods cost this run (None for older runs)."""
    row = con.execute(
        "SELECT r.views_found, r.view_embeddings, r.view_seconds, (SELECT count(DISTINCT x) FROM "
        "(SELECT unnest([a, b]) AS x FROM pairs WHERE dataset = r.dataset)) FROM runs r WHERE r.run_id = ?",
        [run_id]).fetchone()
    if row is None or row[0] is None:
        return None
    found, embedded, seconds, images = row
    return (f"Cost of the extra views: {found} of {images} images have an inner view, i.e. "
            f"{found / max(1, images):.2f} extra embeddings per image ({embedded} computed in this run, "
            f"{seconds:.1f} s for detection, decode, pHash and embedding); the dihedral pHash costs no "
            f"embedding (8 hashes from one DCT block).")
