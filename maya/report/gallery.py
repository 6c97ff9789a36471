"""Reports a person can look at: a self-contained HTML gallery and a CSV of the duplicate groups.

The gallery is one HTML file with its thumbnails inside (JPEG data URIs), no scripts and no external
files, so it can be mailed or archived. Group by group, the kept file comes first and is marked
KEEP; each other member shows its pHash distance and embedding similarity to it, whether it is a
byte-identical copy, its size in pixels and bytes, and a link to the file. Files that could not be
used are listed at the end with their reasons.

Thumbnails are decoded through ``maya.io.images`` (EXIF-oriented, decoded at reduced scale, bombs
refused), a few threads at a time, group after group, so memory holds one group's thumbnails.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence
from urllib.parse import quote

from maya.io.atomic import atomic_file

#: Longest side of a thumbnail, pixels.
THUMB_SIDE = 180
#: Groups drawn in the gallery; the rest are counted (the JSON and CSV hold every group).
MAX_GALLERY_GROUPS = 2000

CSV_COLUMNS = ("group", "keep", "path", "sha256", "phash_distance", "clip_similarity", "exact", "width", "height",
               "size_bytes", "chained", "clause", "views")


#: First characters that make a spreadsheet read a cell as a formula (or a DDE command).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def formula_safe(value):
    """``value`` for a CSV cell a spreadsheet will not evaluate: text starting with ``= + - @``, tab or
    CR gets a leading ``'`` (the usual rule; the quote shows, the text is kept). Numbers, booleans and
    other text are unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def write_csv(groups: Sequence, path: str | os.PathLike) -> None:
    """One row per member of every group (``CSV_COLUMNS``); ``group`` counts from 1 as in the report.

    Bytes of paths that are not UTF-8 are written back as the same bytes (surrogateescape), so the
    CSV names the real files. ``clip_similarity`` is empty when no embedding was used. A path that
    would start a formula is written with a leading ``'`` (:func:`formula_safe`).
    """
    with atomic_file(path, text=True, newline="", errors="surrogateescape") as f:
        w = csv.writer(f)
        w.writerow(CSV_COLUMNS)
        for k, g in enumerate(groups, start=1):
            for i, m in enumerate(g.members):
                w.writerow([k, i == 0, formula_safe(m.path), m.sha256, m.phash_distance,
                            "" if m.clip_similarity is None else f"{m.clip_similarity:.6f}", m.exact,
                            m.width, m.height, m.size_bytes, g.chained, m.clause, m.views])


def thumbnail_data_uri(path: str, side: int = THUMB_SIDE) -> str | None:
    """A JPEG data URI of the image at ``path``, longest side at most ``side``; None if it cannot be read."""
    from maya.io import images as imageio

    try:
        image = imageio.load_image(path, min_side=side).image
    except imageio.ImageLoadError:
        return None
    image.thumbnail((side, side))
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=72, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def risk_order(g) -> tuple:
    """Sort key putting the riskiest groups first: chained, then any member admitted by the model alone or by a
    vote of the group rather than a match with the kept file (clauses "clip", "clip-majority",
    "phash-majority"), or by cells agreeing with the kept file or another member ("grid"), then the largest; ties
    keep the report's order (Python's sort is stable)."""
    indirect = ("clip", "clip-majority", "phash-majority", "grid")
    return (not g.chained, not any(m.clause in indirect for m in g.members), -len(g.members))


def write_html(groups: Sequence, errors: Sequence[dict], path: str | os.PathLike, *, side: int = THUMB_SIDE,
               max_groups: int = MAX_GALLERY_GROUPS, workers: int = 4, progress: bool = False) -> None:
    """Write the gallery to ``path`` (via a temporary file, renamed when complete).

    ``groups``: ``maya.dedup.groups.DuplicateGroup`` (members with sizes); ``errors``: the report's
    ``[{"path", "error"}]``. At most ``max_groups`` groups are drawn.
    """
    from maya.progress import Progress

    shown = sorted(groups, key=risk_order)[:max_groups]
    bar = Progress(len(shown), "gallery", progress)
    try:
        with atomic_file(path, text=True) as out, ThreadPoolExecutor(max_workers=workers) as pool:
            out.write(_head(groups, errors))
            for k, g in enumerate(shown, start=1):
                shas = list(dict.fromkeys(m.sha256 for m in g.members))
                first_path = {m.sha256: m.path for m in reversed(g.members)}
                thumbs = dict(zip(shas, pool.map(lambda s: thumbnail_data_uri(first_path[s], side), shas)))
                out.write(_group_html(k, g, thumbs))
                bar.update(1)
            if len(groups) > len(shown):
                out.write(f'<p class="more">{len(groups) - len(shown):,} more groups are not drawn here; '
                          f"the JSON and CSV list every group.</p>\n")
            out.write(_errors_html(errors))
            out.write("</body>\n</html>\n")
    finally:
        bar.close()


# ---------------------------------------------------------------------------------------------- pieces

_CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; background: #fafafa; }
h1 { font-size: 1.4em; margin: 0 0 .3em; }
.summary { color: #555; margin-bottom: 1.5em; }
section.group { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: .8em 1em; margin: 0 0 1em; }
section.group h2 { font-size: 1em; margin: 0 0 .6em; font-weight: 600; }
.row { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
figure { margin: 0; width: %(w)dpx; border: 2px solid #e3e3e3; border-radius: 4px; padding: 4px; background: #fff; }
figure.keep { border-color: #2e7d32; }
figure img, figure .none { display: block; width: %(w)dpx; height: %(w)dpx; object-fit: contain; background: #eee; }
figure .none { line-height: %(w)dpx; text-align: center; color: #999; font-size: 12px; }
figcaption { font-size: 12px; word-break: break-all; margin-top: 4px; }
.badge { display: inline-block; padding: 0 5px; border-radius: 3px; font-size: 11px; font-weight: 600; }
.keep .badge.k { background: #2e7d32; color: #fff; }
.badge.x { background: #1565c0; color: #fff; }
.badge.c { background: #ef6c00; color: #fff; }
.score { color: #444; }
table.errors { border-collapse: collapse; background: #fff; }
table.errors td, table.errors th { border: 1px solid #ddd; padding: 3px 8px; text-align: left; font-size: 12px; }
.more { color: #555; }
"""


def _text(path: str) -> str:
    """A path as HTML text: undecodable bytes as \\xNN, escaped."""
    return html.escape(path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace"))


def _href(path: str) -> str:
    return "file://" + quote(os.fsencode(os.path.abspath(path)))


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


def _head(groups, errors) -> str:
    files = sum(len(g.members) for g in groups)
    extra = sum(len(g.members) - 1 for g in groups)
    reclaim = sum(m.size_bytes for g in groups for m in g.members[1:])
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<title>Maya: duplicate groups</title>\n"
        f"<style>{_CSS % {'w': THUMB_SIDE}}</style>\n</head>\n<body>\n"
        "<h1>Duplicate groups</h1>\n"
        f'<p class="summary">{len(groups):,} groups, {files:,} files; {extra:,} files are not the kept one '
        f"({_size(reclaim)}). {len(errors):,} files could not be used. "
        "Green: the file to keep (largest resolution, then largest file, then oldest). "
        "d: pHash distance to it in bits; sim: embedding cosine similarity to it; "
        "exact: byte-identical to another file of the group.</p>\n"
    )


def _group_html(k: int, g, thumbs: dict) -> str:
    reclaim = sum(m.size_bytes for m in g.members[1:])
    title = f"Group {k} &middot; {len(g.members)} files &middot; {_size(reclaim)} not kept"
    if g.chained:
        wl = g.weakest_link or {}
        title += (' <span class="badge c">chained</span> weakest link '
                  f"{_text(os.path.basename(wl.get('a', '')))} &ndash; {_text(os.path.basename(wl.get('b', '')))}")
    elif g.split:
        title += ' <span class="badge c">split from a chain</span>'
    cards = []
    for i, m in enumerate(g.members):
        thumb = thumbs.get(m.sha256)
        img = f'<img src="{thumb}" alt="">' if thumb else '<div class="none">no preview</div>'
        if i == 0:
            score = '<span class="badge k">KEEP</span>'
        else:
            score = f'<span class="score">d={m.phash_distance}'
            if m.clip_similarity is not None:
                score += f" &middot; sim={m.clip_similarity:.3f}"
            if m.clause:
                score += f" &middot; {_text(m.clause)}"
            score += "</span>"
        if m.exact:
            score += ' <span class="badge x">exact</span>'
        cards.append(
            f'<figure class="{"keep" if i == 0 else "dup"}">{img}<figcaption>{score}<br>'
            f"{m.width}&times;{m.height} &middot; {_size(m.size_bytes)}<br>"
            f'<a href="{_href(m.path)}">{_text(m.path)}</a></figcaption></figure>'
        )
    return f'<section class="group"><h2>{title}</h2>\n<div class="row">\n' + "\n".join(cards) + "\n</div></section>\n"


def _errors_html(errors: Sequence[dict]) -> str:
    if not errors:
        return ""
    rows = "\n".join(f"<tr><td>{_text(e['path'])}</td><td>{_text(e['error'])}</td></tr>" for e in errors)
    return (f"<h2>Files that could not be used ({len(errors):,})</h2>\n"
            f'<table class="errors"><tr><th>path</th><th>reason</th></tr>\n{rows}\n</table>\n')
