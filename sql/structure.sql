-- How much structure a content's pHash had to work with (issue 13, item 4), one row per stored hash:
-- gray_std = standard deviation of the 32x32 grey image pHash transforms (0..255 scale); pixels = a digest
-- of the decoded pixels (maya.hashing.structure). Near-uniform images (gray_std below
-- maya.hashing.structure.LOW_STRUCTURE_STD) are never matched by pHash alone. Idempotent.
CREATE TABLE IF NOT EXISTS hash_structure (
    sha256    VARCHAR NOT NULL,
    algorithm VARCHAR NOT NULL,  -- the hashes row it describes, e.g. 'phash64-v2'
    gray_std  DOUBLE NOT NULL,
    pixels    VARCHAR,           -- hex blake2b-128 of the decoded size and RGB pixels; NULL above maya.hashing.structure.DIGEST_STD
    PRIMARY KEY (sha256, algorithm)
);
