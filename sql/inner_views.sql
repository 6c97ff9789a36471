-- Second views (issue 15): the inner picture of a screenshot, app window, meme layout or bordered copy
-- (maya.views). One row per (content, detector version) once checked; the box is NULL when the content has
-- no inner view. The view's pHash is in hashes (algorithm 'phash64-v2@inner-v2'), its embedding in
-- embeddings (model '<model id>@inner-v2'). A view is never a file.
-- Applied after schema.sql at every start; every statement is idempotent.

CREATE TABLE IF NOT EXISTS views (
    sha256      VARCHAR NOT NULL,
    view        VARCHAR NOT NULL, -- detector version, e.g. 'inner-v2'
    box_left    DOUBLE,           -- fractions (0..1) of the oriented image's width / height; NULL: no view
    box_top     DOUBLE,
    box_right   DOUBLE,
    box_bottom  DOUBLE,
    checked_at  TIMESTAMP DEFAULT current_timestamp,
    PRIMARY KEY (sha256, view)
);

-- The study's scores over the best pair of views (least pHash distance incl. the dihedral one, greatest
-- similarity over whole/view combinations), used by the '*-views' methods.
ALTER TABLE scores ADD COLUMN IF NOT EXISTS views_distance INTEGER;
ALTER TABLE scores ADD COLUMN IF NOT EXISTS views_similarity DOUBLE;

-- The cost of the views in a run: extra embeddings and seconds (detection, extra decode, hash, embed).
ALTER TABLE runs ADD COLUMN IF NOT EXISTS view_embeddings INTEGER;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS views_found INTEGER;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS view_seconds DOUBLE;
