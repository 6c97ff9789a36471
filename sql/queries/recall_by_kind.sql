-- Recall per transformation kind at each method's chosen thresholds, test split, latest evaluate run.
-- Plain methods next to their dihedral versions (the least pHash distance over 8 flips/turns) and their
-- views versions (the best pair of whole images and inner views), with the views' cost in the run.
-- Combinations of edits ('chain:a+b') are grouped as 'chain'; use kind instead of kind_group to split them.
SELECT kind_group AS kind,
       count(*) FILTER (WHERE method = 'phash') AS positives,
       round(avg(predicted::INT) FILTER (WHERE method = 'phash'), 3) AS phash_recall,
       round(avg(predicted::INT) FILTER (WHERE method = 'clip'), 3) AS clip_recall,
       round(avg(predicted::INT) FILTER (WHERE method = 'hybrid'), 3) AS hybrid_recall,
       round(avg(predicted::INT) FILTER (WHERE method = 'cascade'), 3) AS cascade_recall,
       round(avg(predicted::INT) FILTER (WHERE method = 'phash-dihedral'), 3) AS phash_dihedral_recall,
       round(avg(predicted::INT) FILTER (WHERE method = 'cascade-dihedral'), 3) AS cascade_dihedral_recall,
       round(avg(predicted::INT) FILTER (WHERE method = 'clip-views'), 3) AS clip_views_recall,
       round(avg(predicted::INT) FILTER (WHERE method = 'cascade-views'), 3) AS cascade_views_recall,
       -- the cost of the views in this run: extra embeddings per image of the run, seconds they took
       any_value(round(r.views_found / nullif(i.images, 0), 3)) AS extra_embeddings_per_image,
       any_value(r.view_seconds) AS view_seconds
FROM pair_decisions d
JOIN runs r USING (run_id)
CROSS JOIN (SELECT count(DISTINCT x) AS images FROM (
    SELECT unnest([a, b]) AS x FROM pairs WHERE dataset = (SELECT dataset FROM runs
                                                           WHERE run_id = (SELECT run_id FROM latest_evaluate_run)))) i
WHERE d.run_id = (SELECT run_id FROM latest_evaluate_run) AND d.split = 'test' AND d.label
GROUP BY kind_group
ORDER BY clip_recall, phash_recall, kind;
