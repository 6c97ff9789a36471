-- Hybrid vs CLIP-only at equal recall (latest evaluate run). For each target recall, each method's
-- thresholds are chosen on val: the highest val precision among the points with val recall >= target;
-- ties go to fewer pairs sent to CLIP, then to the val recall nearest the target. Then measured on test.
-- Hybrid searches its whole 2-D grid (pHash pre-filter x CLIP threshold).
WITH run AS (SELECT run_id FROM latest_evaluate_run),
targets AS (SELECT unnest([0.5, 0.6, 0.7, 0.8, 0.9, 0.95]) AS target_recall),
grid AS (
    SELECT v.method, v.phash_threshold, v.clip_threshold,
           v.precision AS val_precision, v.recall AS val_recall, v.clip_fraction AS val_clip_fraction,
           t.precision AS test_precision, t.recall AS test_recall, t.clip_fraction AS test_clip_fraction
    FROM metrics v
    JOIN metrics t ON t.run_id = v.run_id AND t.method = v.method AND t.split = 'test'
         AND t.phash_threshold IS NOT DISTINCT FROM v.phash_threshold
         AND t.clip_threshold IS NOT DISTINCT FROM v.clip_threshold
    WHERE v.run_id = (SELECT run_id FROM run) AND v.split = 'val' AND v.method IN ('clip', 'hybrid')
),
chosen AS (
    SELECT target_recall, g.*
    FROM targets JOIN grid g ON g.val_recall >= targets.target_recall
    QUALIFY row_number() OVER (PARTITION BY target_recall, method
                               ORDER BY val_precision DESC, val_clip_fraction, val_recall,
                                        phash_threshold, clip_threshold) = 1
)
SELECT target_recall,
       round(any_value(test_recall) FILTER (WHERE method = 'clip'), 3) AS clip_test_recall,
       round(any_value(test_precision) FILTER (WHERE method = 'clip'), 3) AS clip_test_precision,
       round(any_value(test_recall) FILTER (WHERE method = 'hybrid'), 3) AS hybrid_test_recall,
       round(any_value(test_precision) FILTER (WHERE method = 'hybrid'), 3) AS hybrid_test_precision,
       any_value(phash_threshold) FILTER (WHERE method = 'hybrid') AS hybrid_phash_threshold,
       round(any_value(clip_threshold) FILTER (WHERE method = 'hybrid'), 3) AS hybrid_clip_threshold,
       round(any_value(test_clip_fraction) FILTER (WHERE method = 'hybrid'), 3) AS hybrid_clip_fraction
FROM chosen
GROUP BY target_recall
ORDER BY target_recall;
