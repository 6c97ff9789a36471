"""The study runs from Python without Prefect and writes the same rows as the evaluate flow.

The flow runs in this process (through the session's Prefect server); the library's study runs in a
fresh Python process that never imports Prefect, on another data folder, from the same originals, seed,
options and tiny CLIP. Both build their pairs, compute their features and sweep; their metric rows must
be equal row for row.
"""

import json
import subprocess
import sys
import textwrap

import pytest

from maya import store

pytestmark = pytest.mark.slow

OPTIONS = {"positives_per_original": 4}
SEED = 2

METRIC_ROWS = ("SELECT method, split, phash_accept, phash_threshold, clip_threshold, tp, fp, fn, tn, "
               "round(f1, 12), round(clip_fraction, 12), selected FROM metrics WHERE run_id = ? "
               "ORDER BY ALL")
SUMMARY_ROWS = ("SELECT split, method, pairs, positives, phash_accept, phash_threshold, clip_threshold, "
                "round(f1_selected, 12), round(roc_auc, 12), round(average_precision, 12), "
                "round(recall_at_p99, 12) FROM method_summary WHERE run_id = ? ORDER BY ALL")

STUDY = textwrap.dedent("""
    import json, sys
    import maya

    summary = maya.evaluate_dataset(dataset="w", source=sys.argv[1], seed=int(sys.argv[2]), model=sys.argv[3],
                                    data_dir=sys.argv[4], pair_options=json.loads(sys.argv[5]))
    assert "prefect" not in sys.modules, sorted(m for m in sys.modules if m.startswith("prefect"))[:5]
    print(json.dumps({"run_id": summary["run_id"], "cache": summary["cache"], "pairs": summary["pairs"],
                      "task_runner": summary["task_runner"], "counts": summary["counts"]}))
""")


def _study_in_a_process_without_prefect(photo_dir, tiny_clip_dir, data_dir) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", STUDY, str(photo_dir), str(SEED), str(tiny_clip_dir), str(data_dir),
         json.dumps(OPTIONS)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _rows(data_dir, run_id: int, query: str):
    con = store.connect(data_dir / "maya.duckdb", read_only=True)
    try:
        return con.execute(query, [run_id]).fetchall()
    finally:
        con.close()


@pytest.fixture(scope="module")
def flow_and_study(prefect_server, photo_dir, tiny_clip_dir, tmp_path_factory):
    from maya.flows.evaluate import evaluate

    flow_data = tmp_path_factory.mktemp("flow-data")
    flow_summary = evaluate(dataset="w", source=str(photo_dir), seed=SEED, model=str(tiny_clip_dir),
                            data_dir=str(flow_data), pair_options=dict(OPTIONS))
    study_data = tmp_path_factory.mktemp("study-data")
    study_summary = _study_in_a_process_without_prefect(photo_dir, tiny_clip_dir, study_data)
    return flow_data, flow_summary, study_data, study_summary


def test_the_study_without_prefect_gives_the_flows_metric_rows(flow_and_study):
    flow_data, flow_summary, study_data, study_summary = flow_and_study
    assert study_summary["cache"] == {"pairs": "computed", "features": "computed", "evaluation": "computed",
                                      "model_loaded": True}
    assert study_summary["task_runner"] == "threads" and study_summary["pairs"] == flow_summary["pairs"]
    flow_rows = _rows(flow_data, flow_summary["run_id"], METRIC_ROWS)
    study_rows = _rows(study_data, study_summary["run_id"], METRIC_ROWS)
    assert len(flow_rows) > 100  # every method's sweep, not only the selected rows
    assert {r[0] for r in study_rows if r[-1]} == {"phash", "clip", "hybrid", "cascade", "phash-dihedral",
                                                   "cascade-dihedral", "clip-views", "cascade-views"}
    assert study_rows == flow_rows
    assert (_rows(study_data, study_summary["run_id"], SUMMARY_ROWS)
            == _rows(flow_data, flow_summary["run_id"], SUMMARY_ROWS))


def test_the_study_without_prefect_records_a_completed_evaluate_run_with_its_scores(flow_and_study):
    flow_data, flow_summary, study_data, study_summary = flow_and_study
    run = ("SELECT flow, dataset, model, status, hashes_computed, embeddings_computed, "
           "(SELECT count(*) FROM scores s WHERE s.run_id = r.run_id) FROM runs r WHERE run_id = ?")
    (study_run,) = _rows(study_data, study_summary["run_id"], run)
    (flow_run,) = _rows(flow_data, flow_summary["run_id"], run)
    assert study_run[0] == "evaluate" and study_run[3] == "completed"
    assert study_run[1:] == flow_run[1:]  # same dataset, model id, counts and number of scores
    scores = "SELECT pair_id, phash_distance, round(clip_similarity, 5) FROM scores WHERE run_id = ? ORDER BY pair_id"
    assert _rows(study_data, study_summary["run_id"], scores) == _rows(flow_data, flow_summary["run_id"], scores)


def test_pluggable_steps_are_what_the_study_calls_and_a_cached_pairset_with_gone_files_is_rebuilt(
        flow_and_study, photo_dir, tiny_clip_dir):
    import shutil

    from maya.evaluation import study

    _, _, study_data, first = flow_and_study
    built = {}
    pair_calls, eval_calls, submitted = [], [], []

    def cached_pairs(source, images_dir, seed, options, *, results, refresh):
        pair_calls.append(refresh)
        if refresh or "pairset" not in built:
            built["pairset"], _ = study.build_pairs_step(source, images_dir, seed, options, results=results)
            return built["pairset"], "computed"
        return built["pairset"], "cached"

    def cached_evaluation(*scores, results, refresh):
        eval_calls.append(results)
        evaluated, _ = study.evaluate_scores_step(*scores, results=results)
        return evaluated, "cached"

    def submit(*args):
        submitted.append(args)
        raise AssertionError("every feature is stored: no batch should be submitted")

    steps = study.StudySteps(submit_features=submit, generate_pairs=cached_pairs, evaluate_scores=cached_evaluation,
                             task_runner="mine")
    kw = dict(dataset="w", source=str(photo_dir), seed=SEED, model=str(tiny_clip_dir), data_dir=str(study_data),
              pair_options=dict(OPTIONS), steps=steps)
    assert study.run_study(**kw)["cache"]["pairs"] == "computed" and pair_calls == [False]
    shutil.rmtree(study_data / "images")  # the cached PairSet now points at derived images that are gone
    again = study.run_study(**kw)
    assert pair_calls == [False, False, True]  # asked the cache, found files gone, asked again with refresh
    assert again["cache"] == {"pairs": "computed", "features": "stored", "evaluation": "cached",
                              "model_loaded": False}
    assert again["task_runner"] == "mine" and not submitted
    assert eval_calls == [study.task_results_dir(study_data)] * 6  # 2 runs x (plain, dihedral, views) scores
    assert (_rows(study_data, again["run_id"], METRIC_ROWS) == _rows(study_data, first["run_id"], METRIC_ROWS))
