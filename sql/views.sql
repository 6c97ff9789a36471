-- Views that make the common joins one-liners, the columns stability rows need, and the
-- method_summary table. Applied after schema.sql at every (write) connect: every statement is idempotent.
--
--   SELECT * FROM selected_metrics WHERE run_id = (SELECT run_id FROM latest_evaluate_run);
--   SELECT kind_group, avg(predicted::INT) FROM pair_decisions
--     WHERE run_id = (SELECT run_id FROM latest_evaluate_run) AND method = 'hybrid' AND split = 'test' AND label
--     GROUP BY ALL;

-- Stability of test F1 over repeated runs (flows/stability.py). Such rows have split = 'stability' (never
-- 'val' or 'test', so `WHERE split = 'test' AND selected` never sees them), selected = false, run_id = the
-- parent 'evaluate-repeats' run, no thresholds and no counts; f1 / precision / recall / clip_fraction hold
-- the mean over the repeats and the columns below the spread of F1.
ALTER TABLE metrics ADD COLUMN IF NOT EXISTS repeats INTEGER;     -- number of runs (seeds) summarised
ALTER TABLE metrics ADD COLUMN IF NOT EXISTS f1_std DOUBLE;       -- sample standard deviation (ddof=1) of test F1
ALTER TABLE metrics ADD COLUMN IF NOT EXISTS f1_ci_low DOUBLE;    -- 95 % percentile-bootstrap interval of mean test F1
ALTER TABLE metrics ADD COLUMN IF NOT EXISTS f1_ci_high DOUBLE;

-- The 'evaluate' runs made by one 'evaluate-repeats' run point to it.
ALTER TABLE runs ADD COLUMN IF NOT EXISTS parent_run_id INTEGER;

-- Threshold-free measures the field reports, per (run, split, method), from maya.ranking.method_summary.
-- Ranking score per pair: phash -> -distance; clip -> similarity; hybrid -> similarity if d <= t_reject
-- else -inf; cascade -> +inf if d <= t_accept, -inf if d > t_reject, else similarity.
CREATE TABLE IF NOT EXISTS method_summary (
    run_id            INTEGER NOT NULL,
    split             VARCHAR NOT NULL, -- 'val' | 'test'
    method            VARCHAR NOT NULL,
    pairs             INTEGER,          -- pairs in the split
    positives         INTEGER,
    phash_accept      INTEGER,          -- the thresholds chosen on 'val' (NULL where the method has none)
    phash_threshold   INTEGER,
    clip_threshold    DOUBLE,
    precision_selected DOUBLE,          -- at the chosen thresholds, on this split
    recall_selected   DOUBLE,
    f1_selected       DOUBLE,
    clip_fraction_selected DOUBLE,
    roc_auc           DOUBLE,           -- NULL when the split has one class only
    average_precision DOUBLE,           -- sklearn's AP (step-wise, no interpolation) = µAP over all pairs
    recall_at_p99     DOUBLE,           -- best recall with precision >= 0.99 on this split (oracle threshold)
    threshold_at_p99  DOUBLE,           -- the threshold giving it: phash: max distance; others: min similarity
                                        -- (+inf: only the accept band matches); NULL when no such threshold
    precision_at_val_p99_threshold DOUBLE, -- this split, at the threshold found on 'val' (honest on 'test')
    recall_at_val_p99_threshold    DOUBLE,
    PRIMARY KEY (run_id, split, method)
);

-- The latest completed evaluate run (one row; none on an empty store).
CREATE OR REPLACE VIEW latest_evaluate_run AS
SELECT max(run_id) AS run_id FROM runs WHERE status = 'completed' AND flow = 'evaluate';

-- Every score with its pair and run: the join nearly every question starts from.
-- kind_group folds the many 'chain:a+b+c' kinds into 'chain'.
CREATE OR REPLACE VIEW scored_pairs AS
SELECT s.run_id, s.dataset, s.pair_id, p.a, p.b, p.label, p.kind,
       CASE WHEN p.kind LIKE 'chain:%' THEN 'chain' ELSE p.kind END AS kind_group,
       p.split, p.original, s.phash_distance, s.clip_similarity, s.clip_computed, s.clip_needed,
       s.dihedral_distance, s.dihedral_variant, s.views_distance, s.views_similarity,
       r.model, r.flow, r.status AS run_status, r.started_at AS run_started_at
FROM scores s
JOIN pairs p USING (dataset, pair_id)
JOIN runs r USING (run_id);

-- One row per (run, method): the thresholds chosen on 'val', the val F1 they were chosen by, the test
-- numbers they give, and (when stored) the threshold-free measures on test.
CREATE OR REPLACE VIEW selected_metrics AS
SELECT v.run_id, r.dataset, r.model, v.method,
       v.phash_accept, v.phash_threshold, v.clip_threshold,
       v.precision AS val_precision, v.recall AS val_recall, v.f1 AS val_f1,
       t.precision AS test_precision, t.recall AS test_recall, t.f1 AS test_f1,
       t.clip_fraction AS test_clip_fraction, t.tp AS test_tp, t.fp AS test_fp, t.fn AS test_fn, t.tn AS test_tn,
       ms.roc_auc AS test_roc_auc, ms.average_precision AS test_average_precision,
       ms.recall_at_p99 AS test_recall_at_p99,
       ms.precision_at_val_p99_threshold AS test_precision_at_val_p99_threshold,
       ms.recall_at_val_p99_threshold AS test_recall_at_val_p99_threshold
FROM metrics v
JOIN metrics t ON t.run_id = v.run_id AND t.method = v.method AND t.split = 'test' AND t.selected
JOIN runs r ON r.run_id = v.run_id
LEFT JOIN method_summary ms ON ms.run_id = v.run_id AND ms.method = v.method AND ms.split = 'test'
WHERE v.split = 'val' AND v.selected;

-- The best F1 anywhere on each sweep (per run, split, method) and where it is. On 'test' this is an oracle:
-- an upper bound to compare the honest selected_metrics.test_f1 with, not a result.
CREATE OR REPLACE VIEW best_f1 AS
SELECT run_id, split, method, f1 AS best_f1, phash_accept, phash_threshold, clip_threshold,
       precision, recall, clip_fraction,
       count(*) OVER (PARTITION BY run_id, split, method) AS grid_points
FROM metrics
WHERE split IN ('val', 'test')
-- ties: the smaller clip fraction, then the smallest thresholds (deterministic)
QUALIFY row_number() OVER (PARTITION BY run_id, split, method
                           ORDER BY f1 DESC, clip_fraction, phash_accept NULLS FIRST, phash_threshold NULLS FIRST,
                                    clip_threshold NULLS FIRST) = 1;

-- Every pair's decision by every method at its chosen thresholds (the one rule of maya.metrics.decide:
-- d <= t_accept -> match; d > t_reject -> no match; else similarity >= t_clip). An unknown distance
-- (NULL or -1: an image failed) is never a match; a missing similarity never passes the embedding test.
-- The '*-dihedral' methods decide on the dihedral distance (sql/hash_variants.sql), the '*-views' ones on the
-- best pair of views (sql/inner_views.sql), reported as phash_distance / clip_similarity.
CREATE OR REPLACE VIEW pair_decisions AS
WITH rule AS (
    SELECT run_id, method,
           CASE WHEN method IN ('phash', 'phash-dihedral', 'phash-views') THEN phash_threshold ELSE coalesce(phash_accept, -1) END AS t_accept,
           coalesce(phash_threshold, 64) AS t_reject,
           coalesce(clip_threshold, 'inf'::DOUBLE) AS t_clip
    FROM metrics WHERE split = 'val' AND selected
)
SELECT sp.run_id, sp.dataset, sp.pair_id, rule.method, sp.split, sp.label, sp.kind, sp.kind_group,
       sp.a, sp.b, sp.phash_distance, sp.clip_similarity,
       rule.t_accept, rule.t_reject, rule.t_clip,
       coalesce(sp.phash_distance >= 0 AND (
           sp.phash_distance <= rule.t_accept
           OR (sp.phash_distance <= rule.t_reject AND coalesce(NOT isnan(sp.clip_similarity) AND sp.clip_similarity >= rule.t_clip, false))
       ), false) AS predicted,
       CASE WHEN coalesce(sp.phash_distance >= 0 AND (
                sp.phash_distance <= rule.t_accept
                OR (sp.phash_distance <= rule.t_reject AND coalesce(NOT isnan(sp.clip_similarity) AND sp.clip_similarity >= rule.t_clip, false))
            ), false)
            THEN (CASE WHEN sp.label THEN 'tp' ELSE 'fp' END)
            ELSE (CASE WHEN sp.label THEN 'fn' ELSE 'tn' END) END AS outcome
FROM (SELECT s.* REPLACE (CASE WHEN rule.method LIKE '%-dihedral' THEN s.dihedral_distance
                                  WHEN rule.method LIKE '%-views' THEN s.views_distance
                             ELSE s.phash_distance END AS phash_distance,
                             CASE WHEN rule.method LIKE '%-views' THEN s.views_similarity
                             ELSE s.clip_similarity END AS clip_similarity), rule.method AS rule_method
      FROM scored_pairs s JOIN rule USING (run_id)) sp
JOIN rule ON rule.run_id = sp.run_id AND rule.method = sp.rule_method;

-- Stability rows (see the ALTER TABLE comment above) with their parent run.
CREATE OR REPLACE VIEW stability AS
SELECT m.run_id, r.dataset, r.model, r.started_at, m.method, m.repeats,
       m.f1 AS f1_mean, m.f1_std, m.f1_ci_low, m.f1_ci_high,
       m.precision AS precision_mean, m.recall AS recall_mean, m.clip_fraction AS clip_fraction_mean
FROM metrics m JOIN runs r USING (run_id)
WHERE m.split = 'stability';
