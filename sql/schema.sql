-- Maya's DuckDB schema. Applied at every start; every statement is idempotent.
-- Identity of an image is the sha256 of its bytes; a path is only where it was found.

CREATE SEQUENCE IF NOT EXISTS run_id_seq START 1;

CREATE TABLE IF NOT EXISTS images (
    sha256      VARCHAR PRIMARY KEY,
    size_bytes  BIGINT,
    width       INTEGER,          -- after EXIF orientation
    height      INTEGER,
    format      VARCHAR,          -- Pillow's name: JPEG, PNG, ...
    status      VARCHAR NOT NULL, -- 'ok' | 'error'
    error       VARCHAR,          -- "reason: message" when status = 'error'
    first_seen  TIMESTAMP DEFAULT current_timestamp
);

CREATE TABLE IF NOT EXISTS files (
    path        VARCHAR PRIMARY KEY,
    sha256      VARCHAR,          -- NULL when the bytes could not be read
    size_bytes  BIGINT,
    mtime       DOUBLE,
    status      VARCHAR NOT NULL, -- 'ok' | 'error'
    error       VARCHAR,
    seen_at     TIMESTAMP DEFAULT current_timestamp
);

CREATE TABLE IF NOT EXISTS datasets (
    name        VARCHAR PRIMARY KEY,
    origin      VARCHAR NOT NULL, -- 'build' | 'import'
    source      VARCHAR,          -- folder or CSV it came from
    seed        BIGINT,
    params      JSON,
    created_at  TIMESTAMP DEFAULT current_timestamp
);

CREATE TABLE IF NOT EXISTS pairs (
    dataset     VARCHAR NOT NULL,
    pair_id     INTEGER NOT NULL,
    a           VARCHAR NOT NULL, -- images.sha256
    b           VARCHAR NOT NULL, -- images.sha256
    label       BOOLEAN NOT NULL, -- true: a and b are (near-)duplicates
    kind        VARCHAR NOT NULL, -- transformation kind, 'random_negative', 'hard_negative_phash', 'semantic', 'imported', ...
    params      JSON,             -- parameters of the transformation
    split       VARCHAR NOT NULL, -- 'val' | 'test'
    original    VARCHAR,          -- the original the pair was derived from (split unit)
    PRIMARY KEY (dataset, pair_id)
);

CREATE TABLE IF NOT EXISTS hashes (
    sha256      VARCHAR NOT NULL,
    algorithm   VARCHAR NOT NULL, -- e.g. 'phash64-v2' (includes the preprocessing version)
    bits        UBIGINT NOT NULL, -- imagehash bit order, MSB first: printf('%016x', bits) = str(imagehash.phash)
    computed_at TIMESTAMP DEFAULT current_timestamp,
    PRIMARY KEY (sha256, algorithm)
);

-- One table for every model; dimensions differ between models, so vector is a list.
-- Cast for the array functions: array_cosine_similarity(a.vector::FLOAT[512], b.vector::FLOAT[512]),
-- or use list_cosine_similarity(a.vector, b.vector) directly.
CREATE TABLE IF NOT EXISTS embeddings (
    sha256      VARCHAR NOT NULL,
    model       VARCHAR NOT NULL, -- model id: weights + preprocessing + precision
    dim         INTEGER NOT NULL,
    vector      FLOAT[] NOT NULL, -- L2-normalised
    computed_at TIMESTAMP DEFAULT current_timestamp,
    PRIMARY KEY (sha256, model)
);

CREATE TABLE IF NOT EXISTS runs (
    run_id        INTEGER PRIMARY KEY DEFAULT nextval('run_id_seq'),
    flow          VARCHAR NOT NULL,   -- 'evaluate' | 'dedup'
    dataset       VARCHAR,
    model         VARCHAR,            -- model id used for embeddings
    parameters    JSON,
    code_version  VARCHAR,
    started_at    TIMESTAMP NOT NULL DEFAULT current_timestamp,
    finished_at   TIMESTAMP,
    status        VARCHAR NOT NULL,   -- 'running' | 'completed' | 'failed'
    hashes_computed     INTEGER,
    hashes_reused       INTEGER,
    embeddings_computed INTEGER,
    embeddings_reused   INTEGER,
    images_failed       INTEGER,
    flow_run_id   VARCHAR             -- Prefect's flow run id
);

CREATE TABLE IF NOT EXISTS scores (
    run_id          INTEGER NOT NULL,
    dataset         VARCHAR NOT NULL,
    pair_id         INTEGER NOT NULL,
    phash_distance  INTEGER,          -- NULL when an image of the pair failed
    clip_similarity DOUBLE,           -- cosine similarity of the embeddings; NULL when not computed
    clip_computed   BOOLEAN NOT NULL, -- an embedding similarity exists for this pair
    clip_needed     BOOLEAN,          -- the selected hybrid rule had to ask the embedding model
    PRIMARY KEY (run_id, pair_id)
);

-- One row per (run, split, method, thresholds) of every sweep. selected marks the thresholds chosen on
-- the validation split: its val row and the test row at the same thresholds.
-- Decision rule for all methods: d <= t_accept -> match; d > t_reject -> no match; else sim >= clip_threshold.
CREATE TABLE IF NOT EXISTS metrics (
    run_id          INTEGER NOT NULL,
    split           VARCHAR NOT NULL, -- 'val' | 'test'
    method          VARCHAR NOT NULL, -- 'phash' | 'clip' | 'hybrid' | 'cascade'
    phash_threshold INTEGER,          -- phash: match if d <= t; hybrid/cascade: t_reject
    phash_accept    INTEGER,          -- cascade: t_accept
    clip_threshold  DOUBLE,           -- clip/hybrid/cascade: match if similarity >= t
    tp INTEGER, fp INTEGER, fn INTEGER, tn INTEGER,
    precision       DOUBLE,
    recall          DOUBLE,
    f1              DOUBLE,
    clip_fraction   DOUBLE,           -- fraction of pairs the rule sent to the embedding model
    selected        BOOLEAN NOT NULL DEFAULT false
);
