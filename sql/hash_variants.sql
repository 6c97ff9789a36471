-- Dihedral pHash (issue 15): the pHash of each of the 8 flips / quarter turns of an image, computed from
-- its one 8x8 DCT block (maya.hashing.dihedral). Variant 0 equals hashes.bits of 'phash64-v2'.
-- Applied after schema.sql at every start; every statement is idempotent.

CREATE TABLE IF NOT EXISTS hash_variants (
    sha256      VARCHAR NOT NULL,
    algorithm   VARCHAR NOT NULL, -- 'phash64-dihedral-v2'
    variant     UTINYINT NOT NULL, -- 0 identity, 1 mirror, 2 flip, 3 rotate180, 4 transpose, 5 rotate90
                                   -- (counter-clockwise), 6 rotate270, 7 transverse (Pillow's Image.Transpose)
    bits        UBIGINT NOT NULL,  -- imagehash bit order, as hashes.bits: the pHash of the turned image
    computed_at TIMESTAMP DEFAULT current_timestamp,
    PRIMARY KEY (sha256, algorithm, variant)
);

-- The study's dihedral distance per pair: min over the 8 variants of either image against the other's
-- plain hash (bits; NULL when an image failed), and the variant that reached it ('identity', 'mirror', ...).
ALTER TABLE scores ADD COLUMN IF NOT EXISTS dihedral_distance INTEGER;
ALTER TABLE scores ADD COLUMN IF NOT EXISTS dihedral_variant VARCHAR;

-- Which flip/turn of the dihedral pHash a dedup pair matched at ('identity', 'mirror', 'rotate90', ...);
-- NULL where only the plain pHash was compared. phash_distance is then the dihedral distance.
ALTER TABLE dedup_pairs ADD COLUMN IF NOT EXISTS phash_variant VARCHAR;
