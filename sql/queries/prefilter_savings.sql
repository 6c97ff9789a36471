-- What the pHash pre-filter saves (latest evaluate run): for each pre-filter threshold, the share of test
-- pairs Hybrid sends to CLIP and the test F1 it reaches with its CLIP threshold chosen on val; CLIP-only
-- (every pair to CLIP) for comparison in the last columns.
WITH run AS (SELECT run_id FROM latest_evaluate_run),
v AS (
    SELECT phash_threshold, clip_threshold, f1 AS val_f1
    FROM metrics WHERE run_id = (SELECT run_id FROM run) AND split = 'val' AND method = 'hybrid'
    QUALIFY row_number() OVER (PARTITION BY phash_threshold ORDER BY f1 DESC, clip_threshold) = 1
)
SELECT v.phash_threshold, round(v.clip_threshold, 3) AS clip_threshold, round(v.val_f1, 4) AS val_f1,
       round(t.f1, 4) AS test_f1, round(t.clip_fraction, 3) AS test_clip_fraction,
       round(c.test_f1, 4) AS clip_only_test_f1
FROM v
JOIN metrics t ON t.run_id = (SELECT run_id FROM run) AND t.split = 'test' AND t.method = 'hybrid'
     AND t.phash_threshold = v.phash_threshold AND t.clip_threshold = v.clip_threshold
LEFT JOIN selected_metrics c ON c.run_id = t.run_id AND c.method = 'clip'
ORDER BY v.phash_threshold;
