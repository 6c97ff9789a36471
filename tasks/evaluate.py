"""Evaluation task: sweeps and selection are a pure function of the scores, so they are cached by content."""

from __future__ import annotations

from datetime import timedelta

from prefect import task

from maya.evaluation import evaluate_pairs
from tasks.policies import content_key


@task(name="evaluate-scores", cache_key_fn=content_key, cache_expiration=timedelta(days=30), persist_result=True)
def evaluate_scores(phash_distance, similarity, label, split, methods):
    return evaluate_pairs(phash_distance, similarity, label, split, methods=tuple(methods))
