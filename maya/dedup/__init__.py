"""The product: find groups of near-duplicate images in folders, and act on them reversibly.

Modules, in pipeline order: ``options`` (mode, thresholds, checks), ``files`` (walk + sha256),
``maya.features.compute_missing`` (pHash + embeddings of what is missing), ``candidates`` (load, candidate
pairs, verify with the one rule), ``groups`` (files grouped, the file to keep first; graph work in
``grouping``), ``outputs`` (report, JSON / CSV / HTML), ``pipeline`` (the steps chained: ``run_dedup``,
``find_duplicates``), ``actions`` (move / link / undo). SQL lives in ``maya.store.dedup``.

The public names below are importable from ``maya.dedup`` itself; each is loaded on first use, so
``import maya.dedup`` stays light (no numpy, no model).
"""

_PUBLIC = {
    "options": ("MODES", "GROUPINGS", "PHASH_ACCEPT", "PHASH_RADIUS", "CLIP_VERIFY", "CLIP_STRICT", "CLIP_VETO", "MODEL_FALLBACKS",
                "CLIP_NEIGHBOURS", "PHASH_BATCH", "DedupUsageError", "DedupOptions", "resolve_thresholds",
                "RuleSource", "describe_rule", "CALIBRATION_PRECISION",
                "check_roots"),
    "files": ("Identified", "identify_files", "file_errors"),
    "candidates": ("Images", "load_images", "Pairs", "candidate_pairs", "pair_similarity", "decide",
                   "verify_pairs"),
    "groups": ("Member", "DuplicateGroup", "duplicate_groups"),
    "outputs": ("build_report", "write_json", "write_outputs"),
    "pipeline": ("Runner", "DedupRun", "summarise_counts", "run_dedup", "find_duplicates"),
}
_WHERE = {name: module for module, names in _PUBLIC.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'maya.dedup' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"maya.dedup.{module}"), name)
