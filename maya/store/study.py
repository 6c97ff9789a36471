"""The study's writes: a dataset's pairs, a run's scores, sweeps and method summary, the stability rows.

Kept apart from :mod:`maya.store` (connection, schema, features, runs) because these rows belong to
one subject, the study (maya.evaluation.study and maya.evaluation.stability). Every write of one
step is one transaction; only the study's own process writes.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from maya import store


def save_pairset(con, dataset: str, *, origin: str, source: str, seed: int, params: dict, pairset,
                 replace: bool = False) -> None:
    """Write a dataset and its pairs and files in one transaction (``replace``: drop the old one first).

    ``pairset`` is a :class:`maya.pairs.build.PairSet`; its file paths are stored as
    :func:`maya.io.ingest.path_text` (undecodable bytes as ``\\xNN``), like the walker's.
    """
    from maya.io.ingest import path_text

    files = [dataclasses.replace(f, path=path_text(f.path)) for f in pairset.files]
    with store.transaction(con):
        if replace:
            con.execute("DELETE FROM pairs WHERE dataset = ?", [dataset])
            con.execute("DELETE FROM datasets WHERE name = ?", [dataset])
        con.execute(
            "INSERT INTO datasets (name, origin, source, seed, params) VALUES (?, ?, ?, ?, ?)",
            [dataset, origin, source, seed, json.dumps(params, sort_keys=True)],
        )
        store.save_files(con, files)
        ps = pairset.pairs
        store.insert_rows(con, "pairs", {
            "dataset": [dataset] * len(ps),
            "pair_id": np.array([p.pair_id for p in ps], dtype=np.int64),
            "a": [p.a for p in ps],
            "b": [p.b for p in ps],
            "label": np.array([p.label for p in ps], dtype=bool),
            "kind": [p.kind for p in ps],
            "params": [json.dumps(p.params, sort_keys=True) if p.params is not None else None for p in ps],
            "split": [p.split for p in ps],
            "original": [p.original for p in ps],
        })


def save_method_summary(con, run_id: int, summary: dict[str, np.ndarray]) -> int:
    """Insert :func:`maya.evaluation.ranking.method_summary` rows for ``run_id``."""
    n = len(summary["method"])
    return store.insert_rows(con, "method_summary", {"run_id": np.full(n, run_id, dtype=np.int64), **summary})


def save_scores_and_metrics(con, run_id: int, dataset: str, scores: dict, metrics: dict,
                            method_summary: dict | None = None) -> None:
    """A run's per-pair scores, its sweep rows and (optionally) its per-method summary, in one transaction."""
    with store.transaction(con):
        n = len(scores["pair_id"])
        store.insert_rows(con, "scores", {"run_id": np.full(n, run_id, dtype=np.int64),
                                          "dataset": [dataset] * n, **scores})
        m = len(metrics["tp"])
        store.insert_rows(con, "metrics", {"run_id": np.full(m, run_id, dtype=np.int64), **metrics})
        if method_summary is not None:
            save_method_summary(con, run_id, method_summary)


def link_repeats(con, parent: int, children: list[int]) -> None:
    """Mark the ``evaluate`` runs ``children`` as repeats of the ``evaluate-repeats`` run ``parent``."""
    for c in children:
        con.execute("UPDATE runs SET parent_run_id = ? WHERE run_id = ?", [parent, c])


def save_stability(con, parent: int, children: list[int], model: str | None, rows: dict) -> None:
    """The repeats' links, the parent run's model and its stability rows (``metrics``, split
    'stability'; columns of :func:`maya.evaluation.stability.stability_rows`), in one transaction."""
    with store.transaction(con):
        link_repeats(con, parent, children)
        con.execute("UPDATE runs SET model = ? WHERE run_id = ?", [model, parent])
        n = len(rows["method"])
        store.insert_rows(con, "metrics", {"run_id": np.full(n, parent, dtype=np.int64), **rows})
