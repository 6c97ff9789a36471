-- What a dedup run found. A dedup run is a row in `runs` with flow = 'dedup' (its parameters, model,
-- times, counts); these tables hold its summary, accepted pairs, groups, members and unusable files.
-- Applied after schema.sql at every start; every statement is idempotent.
-- Paths are stored as found on disk; bytes that are not UTF-8 appear as \xNN.

CREATE TABLE IF NOT EXISTS dedup_runs (
    run_id            INTEGER PRIMARY KEY, -- runs.run_id
    roots             JSON,                -- the folders searched
    mode              VARCHAR NOT NULL,    -- 'hybrid' | 'clip' | 'phash'
    files_found       INTEGER,             -- image files the walk took, plus paths it could not use
    files_read        INTEGER,             -- files read and hashed (sha256) by this run
    files_reused      INTEGER,             -- files whose size and mtime were unchanged: not read
    files_failed      INTEGER,             -- rows in dedup_errors
    images            INTEGER,             -- distinct contents that were compared
    pairs             INTEGER,             -- rows in dedup_pairs
    groups            INTEGER,
    duplicate_files   INTEGER,             -- members that are not kept
    reclaimable_bytes BIGINT               -- their total size
);

-- Accepted pairs of distinct contents (a < b). Images with identical pHash are joined to the first of
-- them (a star), so a group of k identical hashes holds k - 1 pairs, not k^2 / 2.
CREATE TABLE IF NOT EXISTS dedup_pairs (
    run_id          INTEGER NOT NULL,
    a               VARCHAR NOT NULL, -- images.sha256
    b               VARCHAR NOT NULL, -- images.sha256
    phash_distance  INTEGER NOT NULL, -- bits
    clip_similarity DOUBLE,           -- cosine of the embeddings; NULL in mode 'phash'
    rule            VARCHAR NOT NULL, -- clause that accepted it: 'phash' | 'phash+clip' | 'clip'
    PRIMARY KEY (run_id, a, b)
);

CREATE TABLE IF NOT EXISTS dedup_groups (
    run_id                  INTEGER NOT NULL,
    group_id                INTEGER NOT NULL, -- 1.. in the order of the report (by kept path)
    keep_path               VARCHAR NOT NULL,
    files                   INTEGER NOT NULL, -- members, the kept one included
    images                  INTEGER NOT NULL, -- distinct contents among them
    reclaimable_bytes       BIGINT,           -- size of the members that are not kept
    chained                 BOOLEAN NOT NULL, -- a member is not accepted directly with the kept one
    split                   BOOLEAN NOT NULL, -- a part of a chained component cut at its weakest link
    weakest_a               VARCHAR,          -- weakest link of the strongest spanning tree (paths)
    weakest_b               VARCHAR,
    weakest_phash_distance  INTEGER,
    weakest_clip_similarity DOUBLE,
    PRIMARY KEY (run_id, group_id)
);

CREATE TABLE IF NOT EXISTS dedup_members (
    run_id          INTEGER NOT NULL,
    group_id        INTEGER NOT NULL,
    path            VARCHAR NOT NULL,
    sha256          VARCHAR NOT NULL,
    keep            BOOLEAN NOT NULL,
    phash_distance  INTEGER NOT NULL, -- bits, to the kept file
    clip_similarity DOUBLE,           -- to the kept file; NULL in mode 'phash'
    exact           BOOLEAN NOT NULL, -- byte-identical to another member
    PRIMARY KEY (run_id, path)
);

-- Every path the run could not use, with a reason (the codes of maya.imageio.ImageLoadError:
-- missing, unreadable, is_directory, empty, not_an_image, truncated, too_large, unsupported, corrupt;
-- and 'changed' for a file rewritten while the run read it).
CREATE TABLE IF NOT EXISTS dedup_errors (
    run_id  INTEGER NOT NULL,
    path    VARCHAR NOT NULL,
    reason  VARCHAR NOT NULL,
    error   VARCHAR NOT NULL, -- "<reason>: <detail>", one line
    PRIMARY KEY (run_id, path)
);
