"""``maya pairs show``: a contact sheet of a dataset, one row per transformation kind.

Each row shows one pair of the kind: the original (image ``a``), the edited copy (image ``b``), and
the pHash distance between them, with the edit's level and main parameters. Chains get one row per
level; semantic positives, imported kinds and each kind of negative get a row too, so the sheet shows
what the benchmark asks a method to match and to tell apart.

Read-only and light: no Prefect, torch or transformers. The pHash distance comes from the store's
``hashes`` table when the evaluate flow has hashed both images, else it is computed here the same
way (decoded at :data:`maya.pairs.build.SURVEY_MIN_SIDE`); the embedding similarity of the latest run
that scored the pair is added when there is one.
"""

from __future__ import annotations

import json
from pathlib import Path

#: Level shown for single kinds when the dataset has it (the middle of the range).
PREFERRED_LEVEL = "medium"
_CAPTION_PARAMS = 3  # parameters listed under the distance, at most


def show_dataset(db_path: str | Path, dataset: str, out_path: str | Path, *, thumb: int = 160,
                 max_pixels: int | None = None) -> Path:
    """Write the contact sheet PNG of ``dataset`` to ``out_path`` and return the path.

    db_path: the DuckDB store. thumb: thumbnail side in pixels. max_pixels: decompression-bomb
    guard when decoding the images (default: :data:`maya.io.images.DEFAULT_MAX_PIXELS`).
    The rows are those of :func:`sheet_rows`.
    Raises :class:`maya.store.StoreError` without a store, :class:`maya.pairs.build.PairsError` for an
    unknown dataset.
    """
    from maya.report.contact_sheet import contact_sheet

    return contact_sheet(sheet_rows(db_path, dataset, max_pixels=max_pixels), out_path, thumb=thumb)


def sheet_rows(db_path: str | Path, dataset: str, *, max_pixels: int | None = None) -> list[tuple]:
    """The contact sheet's rows: (title, image a, image b, caption) per kind.

    Rows, in order: the single edits in :data:`maya.pairs.transforms.KINDS` order (one pair each, at
    :data:`PREFERRED_LEVEL` when there is one), chains (one per level), semantic positives, imported
    kinds, then negatives (hard by pHash, hard by embedding, random); see :func:`choose_rows`.
    The caption's first line is ``pHash d=<bits>``; then the embedding similarity of the latest
    run that scored the pair (if any), the label, split and pair id, and how the pair was made.
    A pair whose image file is gone gets a grey placeholder and says so.
    """
    from maya import store
    from maya.pairs.build import PairsError

    con = store.connect(db_path, read_only=True)
    try:
        if store.dataset_info(con, dataset) is None:
            names = [r[0] for r in con.execute("SELECT name FROM datasets ORDER BY name").fetchall()]
            known = f"; datasets here: {', '.join(names)}" if names else "; there are no datasets yet"
            raise PairsError(f"no dataset {dataset!r} in {db_path}{known}")
        pairs = con.execute(
            "SELECT pair_id, a, b, label, kind, params, split FROM pairs WHERE dataset = ? ORDER BY pair_id",
            [dataset],
        ).fetchall()
        chosen = choose_rows(pairs)
        shas = {p[1] for _, p in chosen} | {p[2] for _, p in chosen}
        paths = store.image_paths(con, shas)
        from maya.hashing import DEFAULT as hasher

        hashes = store.load_hashes(con, shas, hasher.name)
        similarity = _latest_similarities(con, dataset, [p[0] for _, p in chosen])
    finally:
        con.close()

    rows = []
    images: dict[str, tuple] = {}
    for title, (pair_id, a, b, label, kind, params_json, split) in chosen:
        params = json.loads(params_json) if params_json else {}
        for sha in (a, b):
            if sha not in images:
                images[sha] = _load(paths.get(sha), max_pixels)
        (img_a, bits_a, why_a), (img_b, bits_b, why_b) = images[a], images[b]
        bits_a = hashes.get(a, bits_a)
        bits_b = hashes.get(b, bits_b)
        lines = []
        if bits_a is not None and bits_b is not None:
            from maya.hashing import DEFAULT as hasher

            lines.append(f"pHash d={int(hasher.distance(bits_a, bits_b))}")
        for why in (why_a, why_b):
            if why:
                lines.append(why)
        if pair_id in similarity:
            lines.append(f"similarity {similarity[pair_id][1]:.3f}")
        lines.append(("match" if label else "different") + f", {split}, pair {pair_id}")
        lines.extend(_describe(kind, params))
        rows.append((title, img_a, img_b, "\n".join(lines)))
    return rows


def choose_rows(pairs: list[tuple]) -> list[tuple[str, tuple]]:
    """One (row title, pair row) per kind, in sheet order.

    pairs: (pair_id, a, b, label, kind, params JSON, split) rows, by pair_id. Single kinds take
    their first pair at :data:`PREFERRED_LEVEL` (else their first pair); chains take their first
    pair of each level, titled "chain, <level>: <steps>"; every other kind its first pair.
    """
    from maya.pairs.build import KIND_HARD_EMBEDDING, KIND_HARD_PHASH, KIND_RANDOM, KIND_SEMANTIC
    from maya.pairs.transforms import KINDS, LEVELS

    first: dict[str, tuple] = {}
    preferred: dict[str, tuple] = {}
    chains: dict[str, tuple] = {}
    for row in pairs:
        kind, params = row[4], json.loads(row[5]) if row[5] else {}
        level = params.get("level") if isinstance(params, dict) else None
        if kind.startswith("chain:"):
            chains.setdefault(level or "", row)
            continue
        first.setdefault(kind, row)
        if level == PREFERRED_LEVEL:
            preferred.setdefault(kind, row)
    out = [(k, preferred.get(k, first[k])) for k in KINDS if k in first]
    for level in [*LEVELS, *sorted(set(chains) - set(LEVELS))]:
        if level in chains:
            row = chains[level]
            out.append((f"chain, {level or 'no level'}: {row[4][len('chain:'):]}", row))
    negatives = (KIND_HARD_PHASH, KIND_HARD_EMBEDDING, KIND_RANDOM)
    others = sorted(k for k in first if k not in KINDS and k not in negatives and k != KIND_SEMANTIC)
    for k in [KIND_SEMANTIC, *others, *negatives]:
        if k in first:
            out.append((k, first[k]))
    return out


def _describe(kind: str, params: dict) -> list[str]:
    """A few short lines about how the pair was made."""
    if not isinstance(params, dict) or not params:
        return []
    if kind.startswith("chain:"):
        return [f"{s['kind']}: {_short(s.get('params', {}))}" for s in params.get("steps", [])][:_CAPTION_PARAMS]
    lines = []
    if "level" in params:
        lines.append(f"level {params['level']}")
    if "by" in params:
        parts = [f"by {params['by']}"]
        for key in ("rank", "originals_distance", "originals_similarity"):
            if key in params:
                parts.append(f"{key.replace('_', ' ')} {params[key]}")
        return lines + [", ".join(parts)]
    rest = {k: v for k, v in params.items() if k != "level"}
    if rest:
        lines.append(_short(rest))
    return lines


def _short(params: dict) -> str:
    """``k=v`` for the first few scalar parameters."""
    items = [f"{k}={v}" for k, v in params.items()
             if (isinstance(v, (int, float, str, bool)) or v is None) and len(str(v)) <= 16]  # not seeds
    return ", ".join(items[:_CAPTION_PARAMS])


def _latest_similarities(con, dataset: str, pair_ids: list[int]) -> dict[int, tuple[str, float]]:
    """pair_id -> (model, embedding similarity) from the latest completed run that scored it."""
    if not pair_ids:
        return {}
    rows = con.execute(
        """
        SELECT s.pair_id, arg_max(r.model, s.run_id), arg_max(s.clip_similarity, s.run_id)
        FROM scores s JOIN runs r USING (run_id)
        WHERE s.dataset = ? AND r.status = 'completed' AND s.clip_similarity IS NOT NULL
          AND list_contains(?, s.pair_id)
        GROUP BY s.pair_id
        """,
        [dataset, pair_ids],
    ).fetchall()
    return {int(p): (m, float(s)) for p, m, s in rows}


def _load(path: str | None, max_pixels: int | None):
    """(image at full size, pHash bits as the flow computes them, problem or None)."""
    from PIL import Image

    from maya.io import images as imageio
    from maya.hashing import DEFAULT as hasher
    from maya.pairs.build import SURVEY_MIN_SIDE

    placeholder = Image.new("RGB", (64, 64), (200, 200, 200))
    if path is None:
        return placeholder, None, "image not in the store"
    kw = {"max_pixels": max_pixels} if max_pixels else {}
    try:
        data = imageio.read_file(path)
        full = imageio.decode_image(data, path=path, min_side=None, **kw).image
        small = imageio.decode_image(data, path=path, min_side=SURVEY_MIN_SIDE, **kw).image
    except imageio.ImageLoadError as e:
        return placeholder, None, f"{e.reason}: {Path(path).name}"
    return full, int(hasher.compute([small])[0]), None


def cmd_pairs_show(args) -> int:
    """``maya pairs show --dataset NAME [--out PNG] [--data-dir DIR]``: write the sheet, print its path.

    Uses ``args.dataset``, ``args.out`` (default ``<data dir>/reports/pairs-<dataset>.png``) and
    ``args.data_dir``; ``args.thumb`` (pixels) if the parser defines it.
    """
    from maya.settings import load_settings

    settings = load_settings(data_dir=getattr(args, "data_dir", None))
    out = Path(args.out).expanduser() if getattr(args, "out", None) else settings.reports_dir / f"pairs-{_file_safe(args.dataset)}.png"
    path = show_dataset(settings.db_path, args.dataset, out, thumb=getattr(args, "thumb", None) or 160,
                        max_pixels=settings.max_pixels)
    print(path)
    return 0


def _file_safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "dataset"
