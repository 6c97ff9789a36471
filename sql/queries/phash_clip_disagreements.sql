-- Pairs on which pHash-only and CLIP-only (each at its chosen thresholds) disagree, latest evaluate run,
-- both splits, with who was right. The path columns show where to look at the two images.
WITH d AS (
    SELECT run_id, dataset, pair_id, split, label, kind, a, b, phash_distance, clip_similarity,
           bool_or(predicted) FILTER (WHERE method = 'phash') AS phash_says,
           bool_or(predicted) FILTER (WHERE method = 'clip') AS clip_says
    FROM pair_decisions
    WHERE run_id = (SELECT run_id FROM latest_evaluate_run) AND method IN ('phash', 'clip')
    GROUP BY ALL
)
SELECT pair_id, split, label, kind, phash_distance, round(clip_similarity, 4) AS clip_similarity,
       phash_says, clip_says,
       CASE WHEN phash_says = label THEN 'phash' ELSE 'clip' END AS right_one,
       (SELECT arg_max(path, seen_at) FROM files f WHERE f.sha256 = d.a AND f.status = 'ok') AS path_a,
       (SELECT arg_max(path, seen_at) FROM files f WHERE f.sha256 = d.b AND f.status = 'ok') AS path_b
FROM d
WHERE phash_says <> clip_says
ORDER BY right_one, label DESC, abs(clip_similarity - 0.5) DESC, pair_id;
