-- Run-to-run drift: each completed evaluate run's selected test F1 per method next to the previous run on
-- the same dataset and model, and how many pairs' scores moved. A rerun with the same seed on the CPU
-- should show f1_change = 0, thresholds_changed = false and scores_changed = 0.
WITH sel AS (
    SELECT s.run_id, s.dataset, s.model, s.method, s.phash_accept, s.phash_threshold, s.clip_threshold, s.test_f1,
           lag(s.run_id) OVER w AS previous_run,
           lag(s.test_f1) OVER w AS previous_f1,
           lag(s.phash_accept) OVER w AS p_accept, lag(s.phash_threshold) OVER w AS p_reject,
           lag(s.clip_threshold) OVER w AS p_clip
    FROM selected_metrics s
    JOIN runs r ON r.run_id = s.run_id AND r.status = 'completed'
    WINDOW w AS (PARTITION BY s.dataset, s.model, s.method ORDER BY s.run_id)
)
SELECT sel.run_id, sel.dataset, sel.method, sel.previous_run,
       round(sel.test_f1, 4) AS test_f1,
       round(sel.test_f1 - sel.previous_f1, 4) AS f1_change,
       CASE WHEN sel.previous_run IS NULL THEN NULL
            ELSE sel.phash_accept IS DISTINCT FROM sel.p_accept OR sel.phash_threshold IS DISTINCT FROM sel.p_reject
                 OR sel.clip_threshold IS DISTINCT FROM sel.p_clip END AS thresholds_changed,
       (SELECT count(*) FROM scores x JOIN scores y ON y.pair_id = x.pair_id AND y.run_id = sel.previous_run
        WHERE x.run_id = sel.run_id
          AND (x.phash_distance IS DISTINCT FROM y.phash_distance
               OR x.clip_similarity IS DISTINCT FROM y.clip_similarity)) AS scores_changed
FROM sel
ORDER BY sel.dataset, sel.method, sel.run_id;
