-- Best F1 per method in the latest evaluate run: the honest number (thresholds chosen on val, F1 on test)
-- next to the best F1 anywhere on the test sweep (an oracle upper bound) and the gap between them.
-- Another run: replace (SELECT run_id FROM latest_evaluate_run) with its id.
SELECT s.method,
       s.phash_accept, s.phash_threshold, round(s.clip_threshold, 3) AS clip_threshold,
       round(s.val_f1, 4) AS val_f1,
       round(s.test_precision, 4) AS test_precision,
       round(s.test_recall, 4) AS test_recall,
       round(s.test_f1, 4) AS test_f1,
       round(b.best_f1, 4) AS test_oracle_f1,
       round(b.best_f1 - s.test_f1, 4) AS selection_gap,
       round(s.test_clip_fraction, 3) AS clip_fraction
FROM selected_metrics s
JOIN best_f1 b ON b.run_id = s.run_id AND b.method = s.method AND b.split = 'test'
WHERE s.run_id = (SELECT run_id FROM latest_evaluate_run)
ORDER BY s.test_f1 DESC;
