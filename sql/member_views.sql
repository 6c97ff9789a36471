-- Which views reached a member's deciding score (issue 15): "<member's view>/<kept file's view>", each
-- 'whole' or 'inner' (maya.views), e.g. 'inner/whole'; '' for the kept file (maya.dedup.groups.Member.views).
-- phash_distance and clip_similarity of dedup_members are over the best pair of views, as in dedup_pairs.
-- Applied after dedup.sql at every start; idempotent.
ALTER TABLE dedup_members ADD COLUMN IF NOT EXISTS views VARCHAR;
