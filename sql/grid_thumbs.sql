-- Cell agreement (issue 15): a small grey thumbnail of each content (maya.hashing.grid), for the rule's "grid"
-- clause: overlaid copies whose untouched cells still match their original's pixel for pixel.
-- Applied after schema.sql at every start; every statement is idempotent.

CREATE TABLE IF NOT EXISTS grid_thumbs (
    sha256      VARCHAR NOT NULL,
    algorithm   VARCHAR NOT NULL, -- 'gray96-grid-v1'
    side        INTEGER NOT NULL, -- pixels per side (96)
    pixels      BLOB NOT NULL,    -- side * side uint8 grey values, row-major; or their row deltas, deflated (maya.store.grid)
    computed_at TIMESTAMP DEFAULT current_timestamp,
    PRIMARY KEY (sha256, algorithm)
);
