"""Is there enough in an image for pHash to go on? Images too uniform to hash are found and set apart.

pHash compares the signs of the 64 lowest DCT coefficients of the 32x32 grey image against their median.
On a near-uniform image (a blank page, a faint mark on a flat background, what a white-on-transparent
drawing used to composite to) those coefficients are rounding noise, so unrelated images get equal or
near hashes (``0x8000000000000000`` for a flat one) and the pHash accept clause would join them. Such an
image is *low-structure* when the standard deviation of its 32x32 grey image (values 0..255) is below
:data:`LOW_STRUCTURE_STD`. For those, dedup lets no pHash clause decide (:mod:`maya.dedup.candidates`):
with a model loaded, the model decides; without one, only byte-identical contents (one sha256) or
pixel-identical decodes (equal :func:`pixel_digest` and original size) are grouped.

Both measures are computed at decode time, once per content, and stored next to the hash
(``hash_structure``, sql/structure.sql): a hash's bits alone cannot tell a flat image from a real one. The digest
is made only for images near the bound (:data:`DIGEST_STD`); for the others it is NULL.
"""

from __future__ import annotations

import hashlib

import numpy as np

#: Bound on the 32x32 grey image's standard deviation (0..255 scale). Measured: the 24 bundled sample
#: photos lie at 9.4..; ten white-on-transparent drawings, composited over the contrasting background,
#: at 30..122; a small white "hi" on a transparent 300x300 canvas at 1.5; a fully flat image at 0.
LOW_STRUCTURE_STD = 3.0


def gray_std(gray: np.ndarray) -> np.ndarray:
    """Standard deviation of each grey image of a batch: (N, h, w) -> float64 (N,)."""
    gray = np.asarray(gray, dtype=np.float64)
    return gray.reshape(gray.shape[0], -1).std(axis=1) if gray.size else np.zeros(len(gray))


def is_low_structure(std) -> np.ndarray:
    """Bool (N,): whether images with these :func:`gray_std` values are too uniform for pHash."""
    return np.asarray(std, dtype=np.float64) < LOW_STRUCTURE_STD


#: The pixel digest is made for images whose :func:`gray_std` is below this (a margin over
#: LOW_STRUCTURE_STD, so that a later, higher bound still finds the digests it needs): only low-structure images
#: are ever compared by it (``maya.dedup.candidates.structure_masks``; two images with equal pixels have one std),
#: and hashing a decode's megabyte of pixels cost ~1.4 ms an image, as much as its pHash.
DIGEST_STD = 4 * LOW_STRUCTURE_STD


def wants_digest(gray: np.ndarray) -> bool:
    """Whether the image whose 32x32 grey image is ``gray`` gets a :func:`pixel_digest` (see DIGEST_STD)."""
    return bool(gray_std(np.asarray(gray)[None])[0] < DIGEST_STD)


def pixel_digest(image) -> str:
    """Hex blake2b-128 of a decoded PIL image's mode, size and pixel bytes: equal for pixel-identical decodes."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{image.mode}:{image.size[0]}x{image.size[1]}:".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()
