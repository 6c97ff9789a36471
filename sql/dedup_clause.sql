-- Why each member is in its group (issue 13): the clause that admitted it, to the kept file.
-- 'keep' | 'exact' | 'phash' | 'phash+clip' | 'clip' | 'chained' (see maya.dedup.groups.Member.clause).
-- Applied after dedup.sql at every start; idempotent.
ALTER TABLE dedup_members ADD COLUMN IF NOT EXISTS clause VARCHAR;
