"""Evaluation task: sweeps and selection are a pure function of the scores, so they are cached by content.

The key holds the task's identity and source, the source of the modules that compute the sweeps
(:mod:`maya.evaluation.selection`, :mod:`maya.evaluation.metrics`, :mod:`maya.evaluation.ranking`) and the score arrays
themselves, so an identical rerun skips the sweeps and an edit to the metric code recomputes them.
"""

from __future__ import annotations

from datetime import timedelta

from prefect import task

from maya.evaluation import selection
from maya.tasks.policies import content_key_with

_EVALUATION_CODE = ("maya.evaluation.selection", "maya.evaluation.metrics", "maya.evaluation.ranking")


@task(name="evaluate-scores", cache_key_fn=content_key_with(code=_EVALUATION_CODE),
      cache_expiration=timedelta(days=30), persist_result=True)
def evaluate_scores(phash_distance, similarity, label, split, methods):
    """Task form of :func:`maya.evaluation.selection.evaluate_scores`:
    (metric columns, MethodResults, method_summary columns)."""
    return selection.evaluate_scores(phash_distance, similarity, label, split, methods)
