-- What a person decided while reviewing a dedup run (`maya review`), and what the page did to files.
-- Applied after schema.sql at every start; every statement is idempotent.
-- Decisions are a log: one row per click, never rewritten except to mark it withdrawn (a second click
-- on the same button), so the history of a review stays readable. `maya pairs import --from-review`
-- turns the rows still in force into labelled pairs.

CREATE SEQUENCE IF NOT EXISTS review_decision_seq START 1;

CREATE TABLE IF NOT EXISTS review_decisions (
    decision_id  INTEGER PRIMARY KEY DEFAULT nextval('review_decision_seq'),
    run_id       INTEGER NOT NULL,   -- dedup_runs.run_id
    group_id     INTEGER NOT NULL,   -- dedup_groups.group_id
    decision     VARCHAR NOT NULL,   -- 'not_duplicate' | 'keep' | 'split' | 'group_wrong' | 'confirm'
    sha256s      VARCHAR[] NOT NULL, -- the member(s) it is about (images.sha256); [] for a whole group
    paths        VARCHAR[] NOT NULL, -- the same members' paths as dedup_members stores them
    decided_at   TIMESTAMP NOT NULL DEFAULT current_timestamp,
    withdrawn_at TIMESTAMP           -- set when the person took the decision back; NULL: in force
);

-- Files moved or linked from the page, with the undo manifest of maya.dedup.actions.
CREATE SEQUENCE IF NOT EXISTS review_action_seq START 1;

CREATE TABLE IF NOT EXISTS review_actions (
    action_id  INTEGER PRIMARY KEY DEFAULT nextval('review_action_seq'),
    run_id     INTEGER NOT NULL,
    kind       VARCHAR NOT NULL,  -- 'move' | 'link'
    manifest   VARCHAR NOT NULL,  -- the undo manifest (JSON) written before any file was touched
    files      INTEGER NOT NULL,  -- files planned
    done       INTEGER NOT NULL,  -- files moved or linked
    acted_at   TIMESTAMP NOT NULL DEFAULT current_timestamp,
    undone_at  TIMESTAMP,         -- when the page (or the CLI) put them back
    restored   INTEGER            -- files put back by that undo
);
