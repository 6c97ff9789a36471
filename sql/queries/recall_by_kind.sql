-- Recall per transformation kind at each method's chosen thresholds, test split, latest evaluate run.
-- Plain pHash methods next to their dihedral versions (the least distance over 8 flips/turns).
-- Combinations of edits ('chain:a+b') are grouped as 'chain'; use kind instead of kind_group to split them.
SELECT kind_group AS kind,
       count(*) FILTER (WHERE method = 'phash') AS positives,
       round(avg(predicted::INT) FILTER (WHERE method = 'phash'), 3) AS phash_recall,
       round(avg(predicted::INT) FILTER (WHERE method = 'clip'), 3) AS clip_recall,
       round(avg(predicted::INT) FILTER (WHERE method = 'hybrid'), 3) AS hybrid_recall,
       round(avg(predicted::INT) FILTER (WHERE method = 'cascade'), 3) AS cascade_recall,
       round(avg(predicted::INT) FILTER (WHERE method = 'phash-dihedral'), 3) AS phash_dihedral_recall,
       round(avg(predicted::INT) FILTER (WHERE method = 'cascade-dihedral'), 3) AS cascade_dihedral_recall
FROM pair_decisions
WHERE run_id = (SELECT run_id FROM latest_evaluate_run) AND split = 'test' AND label
GROUP BY kind_group
ORDER BY clip_recall, phash_recall, kind;
