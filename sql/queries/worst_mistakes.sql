-- The most confident mistakes of each method in the latest evaluate run (test split): false positives with
-- the highest similarity (pHash-only: the smallest distance) and false negatives with the lowest.
WITH e AS (
    SELECT *,
           CASE WHEN method = 'phash' THEN -phash_distance ELSE coalesce(clip_similarity, -1) END AS score
    FROM pair_decisions
    WHERE run_id = (SELECT run_id FROM latest_evaluate_run) AND split = 'test' AND outcome IN ('fp', 'fn')
)
SELECT method, outcome, pair_id, kind, phash_distance, round(clip_similarity, 4) AS clip_similarity,
       (SELECT arg_max(path, seen_at) FROM files f WHERE f.sha256 = e.a AND f.status = 'ok') AS path_a,
       (SELECT arg_max(path, seen_at) FROM files f WHERE f.sha256 = e.b AND f.status = 'ok') AS path_b
FROM e
QUALIFY row_number() OVER (PARTITION BY method, outcome
                           ORDER BY CASE WHEN outcome = 'fp' THEN -score ELSE score END, pair_id) <= 5
ORDER BY method, outcome, CASE WHEN outcome = 'fp' THEN -score ELSE score END, pair_id;
