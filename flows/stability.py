"""Stability of the study: the evaluate flow once per seed, then mean, std and bootstrap interval of test F1.

    for each seed: pairs "<dataset>@seed<k>" from the same source -> evaluate (a subflow, its own run)
    -> stability rows (split = 'stability') under one parent run (flow 'evaluate-repeats')
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from prefect import flow, get_run_logger

from maya.flows.evaluate import evaluate
from maya import store
from maya.settings import load_settings
from maya.evaluation.stability import N_BOOTSTRAP, stability_rows


def repeat_dataset_name(dataset: str, seed: int) -> str:
    """Name of the dataset built for one repeat."""
    return f"{dataset}@seed{seed}"


def recorded_source(con, dataset: str) -> tuple[str, dict]:
    """(source folder, pair options) a built dataset was made with, from the ``datasets`` table."""
    from maya.pairs.build import PairsError

    info = store.dataset_info(con, dataset)
    if info is None:
        raise PairsError(f"unknown dataset {dataset!r}: build it first, or pass the source folder of the originals")
    if info["origin"] != "build" or not info["source"]:
        raise PairsError(
            f"dataset {dataset!r} was imported ({info['source']}); repeats regenerate pairs with other seeds, "
            f"which needs a dataset built from a folder of originals")
    options = {k: v for k, v in (info["params"] or {}).items() if k != "kind"}
    return info["source"], options


@flow(name="evaluate-repeats", log_prints=True)
def evaluate_repeats(
    dataset: str = "demo",
    source: str | None = None,
    seeds: list[int] | None = None,
    model: str | None = None,
    data_dir: str | None = None,
    device: str | None = None,
    precision: str | None = None,
    batch_size: int | None = None,
    methods: list[str] | None = None,
    pair_options: dict | None = None,
    confidence: float = 0.95,
    n_boot: int = N_BOOTSTRAP,
    bootstrap_seed: int = 0,
) -> dict:
    """Run ``flows.evaluate.evaluate`` once per seed and store the spread of test F1 per method.

    The pairs of each repeat are built from ``source`` (or, when None, from the source folder and pair
    options recorded for ``dataset``) into the dataset ``"<dataset>@seed<k>"``; an existing one with the
    same parameters is reused, and cached hashes and embeddings are never recomputed. The stability rows
    go to ``metrics`` (split 'stability') under a parent run with flow 'evaluate-repeats'; each repeat's
    own run gets ``parent_run_id`` set to it.

    Returns: {"run_id", "dataset", "seeds", "runs": [per repeat: run_id, dataset, seed, results],
    "stability": stability rows as a list of dicts}.
    """
    log = get_run_logger()
    seeds = [int(s) for s in (seeds if seeds is not None else [0, 1, 2])]
    if not seeds:
        raise ValueError("evaluate_repeats needs at least one seed")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds repeat: {seeds}")
    settings = load_settings(data_dir=data_dir, model=model, device=device, precision=precision,
                             batch_size=batch_size)
    con = store.connect(settings.db_path)
    try:
        if source is None:
            source, recorded = recorded_source(con, dataset)
            options = {**recorded, **(pair_options or {})}
        else:
            source = str(Path(source).resolve())
            options = dict(pair_options or {})
        from prefect.runtime import flow_run

        parent = store.start_run(
            con, flow="evaluate-repeats", dataset=dataset, model=None,
            parameters={"dataset": dataset, "source": source, "seeds": seeds, "model": settings.model,
                        "methods": methods, "pair_options": options, "confidence": confidence,
                        "n_boot": n_boot, "bootstrap_seed": bootstrap_seed,
                        "datasets": [repeat_dataset_name(dataset, s) for s in seeds]},
            flow_run_id=str(flow_run.get_id() or ""))
    finally:
        con.close()  # the subflows open the store themselves

    children: list[dict] = []
    try:
        for seed in seeds:
            name = repeat_dataset_name(dataset, seed)
            log.info("repeat %d/%d: dataset %s", len(children) + 1, len(seeds), name)
            summary = evaluate(dataset=name, source=source, seed=seed, model=settings.model,
                               data_dir=str(settings.data_dir), device=settings.device,
                               precision=settings.precision, batch_size=settings.batch_size, methods=methods,
                               pair_options=options)
            children.append({"run_id": summary["run_id"], "dataset": name, "seed": seed,
                             "model": summary["model"], "pairs": summary["pairs"], "results": summary["results"]})
        rows = stability_rows([c["results"] for c in children], confidence=confidence, n_boot=n_boot,
                              seed=bootstrap_seed)
    except BaseException:
        con = store.connect(settings.db_path)
        try:
            _link_children(con, parent, children)
            store.finish_run(con, parent, status="failed")
        finally:
            con.close()
        raise

    con = store.connect(settings.db_path)
    try:
        with store.transaction(con):
            _link_children(con, parent, children)
            con.execute("UPDATE runs SET model = ? WHERE run_id = ?", [children[0]["model"], parent])
            n = len(rows["method"])
            store.insert_rows(con, "metrics", {"run_id": np.full(n, parent, dtype=np.int64), **rows})
        store.finish_run(con, parent, status="completed")
    finally:
        con.close()
    stability = [{k: (v[i].item() if hasattr(v[i], "item") else v[i]) for k, v in rows.items()}
                 for i in range(len(rows["method"]))]
    return {"run_id": parent, "dataset": dataset, "source": source, "seeds": seeds, "runs": children,
            "stability": stability}


def _link_children(con, parent: int, children: list[dict]) -> None:
    for c in children:
        con.execute("UPDATE runs SET parent_run_id = ? WHERE run_id = ?", [parent, c["run_id"]])
