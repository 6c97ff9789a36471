-- Collection benchmarks (issue 13): a dataset's originals and edited copies laid out as files, the truth of
-- which files share an original, and the grouping metrics of dedup runs over that folder.
-- Applied after schema.sql at every start; every statement is idempotent.

CREATE TABLE IF NOT EXISTS collection_files (
    dataset         VARCHAR NOT NULL, -- datasets.name
    path            VARCHAR NOT NULL, -- the file in the collection folder
    sha256          VARCHAR NOT NULL,
    original        VARCHAR NOT NULL, -- sha256 of the original this file is (a copy of)
    semantic_group  VARCHAR,          -- originals of one group ("same thing, other shot"); NULL: none
    kind            VARCHAR NOT NULL, -- 'original', an edit kind, or 'chain'
    split           VARCHAR,          -- the pair dataset's split of the original ('val' | 'test')
    PRIMARY KEY (dataset, path)
);

-- One row per evaluation of a collection: a dedup run over its folder, scored against the truth. Pairs are
-- all unordered file pairs; pairs of different originals of one semantic group count neither way.
CREATE TABLE IF NOT EXISTS collection_metrics (
    metrics_id      INTEGER PRIMARY KEY,
    dataset         VARCHAR NOT NULL,
    dedup_run_id    INTEGER,          -- runs.run_id of the dedup run scored
    evaluate_run_id INTEGER,          -- the evaluate run whose thresholds were used (NULL: built-in defaults)
    evaluated_at    TIMESTAMP DEFAULT current_timestamp,
    model           VARCHAR,
    rule            VARCHAR NOT NULL, -- the rule, in words
    rule_source     VARCHAR NOT NULL, -- where its thresholds came from
    files           INTEGER NOT NULL,
    originals       INTEGER NOT NULL,
    true_pairs      BIGINT NOT NULL,  -- file pairs of one original
    predicted_pairs BIGINT NOT NULL,  -- file pairs put in one group (counted pairs only)
    true_positives  BIGINT NOT NULL,
    "precision"     DOUBLE,
    recall          DOUBLE,
    f1              DOUBLE,
    groups          INTEGER NOT NULL,
    largest_group   INTEGER NOT NULL, -- files
    largest_true_group INTEGER NOT NULL, -- files of the largest original (the truth's largest group)
    chained_groups  INTEGER NOT NULL,
    mixed_groups    INTEGER NOT NULL, -- groups holding files of two or more originals
    pair_f1         DOUBLE            -- the evaluate run's pair F1 (test split) of the method the rule follows
);

-- Recall per edit kind: a file counts as found when it is grouped with any other file of its original.
CREATE TABLE IF NOT EXISTS collection_kind_recall (
    metrics_id INTEGER NOT NULL,
    kind       VARCHAR NOT NULL,
    files      INTEGER NOT NULL,
    found      INTEGER NOT NULL,
    recall     DOUBLE,
    PRIMARY KEY (metrics_id, kind)
);

CREATE OR REPLACE VIEW latest_collection_metrics AS
SELECT m.* FROM collection_metrics m
JOIN (SELECT dataset, max(metrics_id) AS metrics_id FROM collection_metrics GROUP BY dataset) l USING (dataset, metrics_id);
