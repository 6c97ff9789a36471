"""How many feature batches a dedup keeps in flight: three small (model-sized) batches, two large ones, or the
runner's own count; the results do not depend on it."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from maya import features
from maya.dedup.options import DedupOptions
from maya.dedup.pipeline import Runner, feature_in_flight, run_dedup


class CountingSubmit:
    """Runs ``maya.features.compute_batch`` on threads and counts the batches submitted but not yet taken back
    (``.result()``): ``most`` is the deepest the feature loop went."""

    def __init__(self):
        self.pool = ThreadPoolExecutor(2)
        self.lock = threading.Lock()
        self.open = self.most = self.batches = 0

    def __call__(self, *args):
        with self.lock:
            self.open += 1
            self.batches += 1
            self.most = max(self.most, self.open)
        future = self.pool.submit(features.compute_batch, *args)
        counter = self

        class Taken:
            def result(self):
                with counter.lock:
                    counter.open -= 1
                return future.result()

        return Taken()


def dedup_with(photo_dir, tmp_path, runner_kwargs, name):
    submit = CountingSubmit()
    try:
        run = run_dedup(photo_dir, DedupOptions(mode="phash"), db_path=tmp_path / f"{name}.duckdb", batch_size=2,
                        runner=Runner(image_features=submit, **runner_kwargs))
    finally:
        submit.pool.shutdown()
    return run, submit


def test_small_feature_batches_are_kept_three_deep_by_default(photo_dir, tmp_path):
    run, submit = dedup_with(photo_dir, tmp_path, {}, "default")
    assert submit.batches == 4  # 8 photos, 2 a batch
    assert submit.most == 3
    assert run.counts["hashes_computed"] == 8


def test_a_runners_own_in_flight_count_is_kept_and_gives_the_same_groups(photo_dir, tmp_path):
    deep, _ = dedup_with(photo_dir, tmp_path, {}, "deep")
    one, submit = dedup_with(photo_dir, tmp_path, {"in_flight": 1}, "one")
    assert submit.most == 1
    assert [[m.path for m in g.members] for g in one.groups] == [[m.path for m in g.members] for g in deep.groups]
    assert one.counts["hashes_computed"] == deep.counts["hashes_computed"] == 8


def test_large_feature_batches_stay_two_deep():
    assert feature_in_flight(Runner(), 256) == 2
    assert feature_in_flight(Runner(), 8) == 3
    assert feature_in_flight(Runner(in_flight=5), 256) == 5
