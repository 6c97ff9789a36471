"""Grouping metrics on a collection benchmark: the number the product (``maya dedup`` of a folder) is judged by.

A collection (``maya.pairs.collection``) is a folder of originals and their edited copies, with the truth
(``collection_files``: the original each file is a copy of). :func:`evaluate_collection` runs the dedup
library pipeline (``maya.dedup.pipeline.run_dedup``, exactly what ``maya dedup`` runs) over that folder and
:func:`grouping_metrics` scores its groups:

* **pairwise precision / recall / F1** over all unordered file pairs: a pair is predicted positive when
  both files are in one group, truly positive when both are copies of one original. Pairs of *different*
  originals of one semantic group are counted neither way. With N files there are N(N-1)/2 pairs and only
  sum_o n_o(n_o-1)/2 true ones: the collection's own odds, not the pair study's 1:1.
* **recall per edit kind**: a file counts as found when its group holds any other file of its original.
* **largest group** (files), **chained groups** (a member not accepted directly with the kept file), and
  **mixed groups** (files of two or more originals that are not one semantic group).

Results go to ``collection_metrics`` / ``collection_kind_recall`` (``sql/collection.sql``); the view
``latest_collection_metrics`` has the newest row per dataset.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Mapping, Sequence


@dataclass(frozen=True)
class TruthFile:
    original: str  # sha256 of the original
    semantic_group: str | None
    kind: str  # 'original', an edit kind, 'chain'


@dataclass
class GroupingMetrics:
    files: int
    originals: int
    true_pairs: int
    predicted_pairs: int
    true_positives: int
    precision: float
    recall: float
    f1: float
    groups: int
    largest_group: int
    largest_true_group: int
    chained_groups: int
    mixed_groups: int
    kind_recall: dict[str, tuple[int, int]] = field(default_factory=dict)  # kind -> (files, found)

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d["kind_recall"] = {k: {"files": n, "found": f, "recall": f / n if n else None}
                            for k, (n, f) in sorted(self.kind_recall.items())}
        return d


def _c2(n: int) -> int:
    return n * (n - 1) // 2


def grouping_metrics(truth: Mapping[str, TruthFile], groups: Sequence[Sequence[str]],
                     chained: Sequence[bool] | None = None) -> GroupingMetrics:
    """Score predicted ``groups`` (lists of paths) against ``truth`` (path -> :class:`TruthFile`).

    Paths not in ``truth`` are ignored; files of ``truth`` in no group are singletons.
    """
    from collections import Counter

    group_of: dict[str, int] = {}
    for g, members in enumerate(groups):
        for p in members:
            if p in truth:
                group_of[p] = g
    singleton = len(groups)
    labels = {}
    for p in truth:
        if p not in group_of:
            labels[p] = singleton
            singleton += 1
        else:
            labels[p] = group_of[p]
    by_group_original: Counter = Counter((labels[p], t.original) for p, t in truth.items())
    by_group_semantic: Counter = Counter((labels[p], t.semantic_group) for p, t in truth.items()
                                         if t.semantic_group is not None)
    by_group: Counter = Counter(labels.values())
    by_original: Counter = Counter(t.original for t in truth.values())
    tp = sum(_c2(n) for n in by_group_original.values())
    predicted = sum(_c2(n) for n in by_group.values())
    # pairs of different originals of one semantic group, inside one predicted group: not counted
    sem_of = {t.original: t.semantic_group for t in truth.values()}
    same_sem_orig: Counter = Counter()
    for (g, o), n in by_group_original.items():
        if sem_of[o] is not None:
            same_sem_orig[(g, sem_of[o])] += _c2(n)
    excluded = sum(_c2(n) - same_sem_orig[key] for key, n in by_group_semantic.items())
    predicted -= excluded
    true_pairs = sum(_c2(n) for n in by_original.values())
    precision = tp / predicted if predicted else 1.0
    recall = tp / true_pairs if true_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    kind_recall: dict[str, list[int]] = {}
    for p, t in truth.items():
        cell = kind_recall.setdefault(t.kind, [0, 0])
        cell[0] += 1
        cell[1] += by_group_original[(labels[p], t.original)] >= 2
    mixed = 0
    for g in range(len(groups)):
        mixed += len({truth[p].semantic_group or truth[p].original for p in groups[g] if p in truth}) >= 2
    sizes = [sum(1 for p in m if p in truth) for m in groups]
    return GroupingMetrics(
        files=len(truth), originals=len(by_original), true_pairs=true_pairs, predicted_pairs=predicted,
        true_positives=tp, precision=precision, recall=recall, f1=f1, groups=sum(1 for s in sizes if s >= 2),
        largest_group=max(sizes + [1]), largest_true_group=max(by_original.values(), default=0),
        chained_groups=sum(bool(c) for c in (chained or ())), mixed_groups=int(mixed),
        kind_recall={k: (v[0], v[1]) for k, v in kind_recall.items()})


def read_truth(con, dataset: str) -> dict[str, TruthFile]:
    """path -> :class:`TruthFile` of ``dataset``'s collection (empty when it has none)."""
    rows = con.execute("SELECT path, original, semantic_group, kind FROM collection_files WHERE dataset = ?",
                       [dataset]).fetchall()
    return {p: TruthFile(o, g, k) for p, o, g, k in rows}


@dataclass
class CollectionResult:
    dataset: str
    metrics: GroupingMetrics
    dedup_run_id: int
    rule: str
    rule_source: str
    metrics_id: int | None = None


def evaluate_collection(db_path: str | os.PathLike, dataset: str, options=None, *, model: str | None = None,
                        calibration: str | None = None, device: str | None = None, precision: str = "auto",
                        batch_size: int | None = None, pair_f1: float | None = None,
                        save: bool = True) -> CollectionResult:
    """Run dedup over ``dataset``'s collection folder and score its groups (stored unless ``save=False``).

    ``options``: :class:`maya.dedup.options.DedupOptions` (default: the product's defaults); ``model`` and
    ``calibration`` as for ``maya dedup`` (``--model``, ``--calibration``). ``pair_f1``: the pair study's F1
    of the same run, stored next to the grouping F1 for comparison.
    """
    from maya import store
    from maya.dedup.pipeline import run_dedup
    from maya.pairs.collection import collection_root
    from maya.pairs.records import PairsError

    con = store.connect(db_path)
    try:
        truth = read_truth(con, dataset)
        root = collection_root(con, dataset)
    finally:
        con.close()
    if not truth or root is None:
        raise PairsError(f"dataset {dataset!r} has no collection: lay one out with "
                         f"`maya pairs build SRC --dataset {dataset} --collection`")
    run = run_dedup([str(root)], options, db_path=db_path, model=model, device=device, precision=precision,
                    batch_size=batch_size, calibration=calibration)
    from maya.io.ingest import path_text

    groups = [[path_text(m.path) for m in g.members] for g in run.groups]
    metrics = grouping_metrics(truth, groups, [g.chained for g in run.groups])
    result = CollectionResult(dataset, metrics, run.run_id, run.rule_text, run.rule_source.text)
    if save:
        con = store.connect(db_path)
        try:
            result.metrics_id = save_metrics(con, result, model=run.model_id, evaluate_run_id=run.calibration_run,
                                             pair_f1=pair_f1)
        finally:
            con.close()
    return result


def save_metrics(con, result: CollectionResult, *, model: str | None, evaluate_run_id: int | None,
                 pair_f1: float | None) -> int:
    """Insert one ``collection_metrics`` row and its ``collection_kind_recall`` rows; returns metrics_id."""
    from maya import store

    m = result.metrics
    with store.transaction(con):
        (mid,) = con.execute("SELECT coalesce(max(metrics_id), 0) + 1 FROM collection_metrics").fetchone()
        con.execute(
            "INSERT INTO collection_metrics (metrics_id, dataset, dedup_run_id, evaluate_run_id, model, rule, "
            "rule_source, files, originals, true_pairs, predicted_pairs, true_positives, \"precision\", recall, "
            "f1, groups, largest_group, largest_true_group, chained_groups, mixed_groups, pair_f1) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [mid, result.dataset, result.dedup_run_id, evaluate_run_id, model, result.rule, result.rule_source,
             m.files, m.originals, m.true_pairs, m.predicted_pairs, m.true_positives, m.precision, m.recall,
             m.f1, m.groups, m.largest_group, m.largest_true_group, m.chained_groups, m.mixed_groups, pair_f1])
        con.executemany("INSERT INTO collection_kind_recall VALUES (?, ?, ?, ?, ?)",
                        [(mid, k, n, f, f / n if n else None) for k, (n, f) in sorted(m.kind_recall.items())])
    return int(mid)


def format_metrics(result: CollectionResult) -> str:
    """A few lines for the terminal: the grouping figures and the weakest edit kinds."""
    m = result.metrics
    lines = [f"collection {result.dataset!r}: {m.files} files of {m.originals} originals, {m.true_pairs} true pairs",
             f"  rule: {result.rule} (source: {result.rule_source})",
             f"  pairwise precision {m.precision:.4f}  recall {m.recall:.4f}  F1 {m.f1:.4f}",
             f"  groups {m.groups}, largest {m.largest_group} files (truth's largest {m.largest_true_group}), "
             f"chained {m.chained_groups}, mixed {m.mixed_groups}"]
    weak = sorted(((f / n, k, n, f) for k, (n, f) in m.kind_recall.items() if n), key=lambda r: r[0])[:6]
    if weak:
        lines.append("  weakest kinds (recall): " + ", ".join(f"{k} {r:.2f} ({f}/{n})" for r, k, n, f in weak))
    return "\n".join(lines)
