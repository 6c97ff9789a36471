"""What a dedup run is asked to do: its mode and thresholds, checked, and where the defaults come from.

The modes are settings of the one decision rule (:mod:`maya.rule`, see :attr:`DedupOptions.rule`), for two
distinct images with pHash distance d (bits) and embedding cosine similarity s:

* ``phash``:  d <= phash_accept.
* ``clip``:   s >= clip_strict.
* ``hybrid``: d <= phash_accept, or (d <= phash_radius and s >= clip_verify), or s >= clip_strict.
  The last clause keeps crops, flips and borders, which are far apart in pHash.

The embedding thresholds left as None are filled by :func:`measured_options` from the evaluate study of
the same model in the same store, else per-model fallbacks.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Iterable

from maya.errors import MayaUsageError
from maya.hashing import DEFAULT
from maya.rule import Rule

MODES = ("hybrid", "clip", "phash")

# Default thresholds. The pHash numbers come from the evaluate study (`maya demo`): light edits of the
# demo photos (resize, re-encode, colour, blur, noise, small overlays) stay within 0-8 bits, distinct
# photos are >= 22 bits apart, and crops / borders / small rotations spread over 2-30 bits, so 8 accepts
# without a model and 16 is the radius worth asking the model about. The embedding thresholds are for
# L2-normalised CLIP-like embeddings; they are to be replaced by the study's selected values measured
# on the demo with efficientnet-lite0 (see README). Every one has a flag.
PHASH_ACCEPT = 8  # bits: d <= this is a duplicate without asking the model
PHASH_RADIUS = 16  # bits: hybrid asks the model about pairs with PHASH_ACCEPT < d <= this
CLIP_VERIFY = 0.90  # cosine similarity a pHash candidate needs (hybrid), when the study has no number
CLIP_STRICT = 0.95  # cosine similarity at which embedding neighbours match on their own (clip, hybrid)
#: Fallbacks per embedding family when the store holds no evaluate run of the model. Similarities are not
#: comparable across models: efficientnet-lite0's copies score 0.885-0.985 against their originals and
#: different photos at most 0.35 on the demo photos, while CLIP puts unrelated photos at 0.5-0.8.
MODEL_FALLBACKS = {"efficientnet-lite0": (0.80, 0.85)}
CLIP_NEIGHBOURS = 16  # nearest neighbours per image looked at for the embedding-only clause

#: Images per feature batch (decode + pHash + embed, one transaction) when no model sets it.
PHASH_BATCH = 256


class DedupUsageError(MayaUsageError, ValueError):
    """A problem with what the caller asked for (missing folder, bad threshold, unknown mode)."""


# ---------------------------------------------------------------------------------------------- options


@dataclass(frozen=True)
class DedupOptions:
    """How pairs are decided and groups formed. Thresholds: bits for pHash, cosine for embeddings."""

    mode: str = "hybrid"
    phash_accept: int = PHASH_ACCEPT
    phash_radius: int = PHASH_RADIUS
    clip_verify: float | None = None  # None: as measured by the study (measured_options)
    clip_strict: float | None = None
    clip_k: int = CLIP_NEIGHBOURS
    split_chains: bool = False
    views: bool = True  # also compare the inner views of screenshots, memes, borders (maya.views)

    @property
    def uses_embeddings(self) -> bool:
        return self.mode in ("hybrid", "clip")

    @property
    def rule(self) -> Rule:
        """This mode as a setting of the one decision rule (:mod:`maya.rule`). A similarity threshold still
        None (not yet measured, see :func:`measured_options`) turns its clause off."""
        inf = math.inf
        verify = inf if self.clip_verify is None else float(self.clip_verify)
        strict = inf if self.clip_strict is None else float(self.clip_strict)
        if self.mode == "phash":
            return Rule(int(self.phash_accept), int(self.phash_accept))
        if self.mode == "clip":
            return Rule(-1, -1, inf, strict)  # no pHash clause, no band: the embedding alone decides
        return Rule(int(self.phash_accept), int(self.phash_radius), verify, strict)

    def check(self) -> "DedupOptions":
        """Return self, or raise :class:`DedupUsageError` naming the bad setting.

        ``clip_verify`` / ``clip_strict`` may be None: "as measured by the study" (see
        :func:`measured_options`), resolved once the model is known."""
        import numpy as np
        if self.mode not in MODES:
            raise DedupUsageError(f"unknown mode {self.mode!r}: use one of {', '.join(MODES)}")
        for name in ("phash_accept", "phash_radius"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v <= DEFAULT.bits:
                raise DedupUsageError(f"{name.replace('_', '-')} must be a whole number of bits in 0..{DEFAULT.bits}, got {v!r}")
        if self.mode == "hybrid" and self.phash_radius < self.phash_accept:
            raise DedupUsageError(f"phash-radius ({self.phash_radius}) must be >= phash-accept ({self.phash_accept})")
        for name in ("clip_verify", "clip_strict"):
            v = getattr(self, name)
            if v is None:
                continue
            if not isinstance(v, (int, float, np.floating)) or not -1.0 <= float(v) <= 1.0 or v != v:
                raise DedupUsageError(f"{name.replace('_', '-')} must be a cosine similarity in -1..1, got {v!r}")
        if isinstance(self.clip_k, bool) or not isinstance(self.clip_k, (int, np.integer)) or self.clip_k < 1:
            raise DedupUsageError(f"clip-k must be a whole number >= 1, got {self.clip_k!r}")
        return self

    def as_dict(self) -> dict:
        return {"mode": self.mode, "phash_accept": int(self.phash_accept), "phash_radius": int(self.phash_radius),
                "clip_verify": None if self.clip_verify is None else float(self.clip_verify),
                "clip_strict": None if self.clip_strict is None else float(self.clip_strict),
                "clip_k": int(self.clip_k), "split_chains": bool(self.split_chains), "views": bool(self.views)}


def measured_options(con, options: DedupOptions, model_name: str | None, model_id: str | None) -> DedupOptions:
    """Fill the embedding thresholds the caller left as None with what the evaluate study measured.

    From the latest completed evaluate run of the same model (``runs.model`` = ``model_id``) in this store:
    ``clip_verify`` = the cascade's similarity threshold chosen on val, ``clip_strict`` = the CLIP-only
    threshold that reached precision >= 0.99 on val (``method_summary``), else its F1-best one. Without
    such a run: per-model fallbacks (:data:`MODEL_FALLBACKS`), then the CLIP defaults.
    """
    from dataclasses import replace

    if options.clip_verify is not None and options.clip_strict is not None:
        return options
    verify = strict = None
    if model_id is not None:
        from maya.store import dedup as dedup_store

        row = dedup_store.measured_thresholds(con, model_id)
        if row is not None:
            verify = row[1]
            strict = row[3] if row[3] is not None and row[3] == row[3] else row[2]
            if strict is not None and verify is not None:
                strict = max(strict, verify)
    fallback = MODEL_FALLBACKS.get(model_name or "", (CLIP_VERIFY, CLIP_STRICT))
    return replace(
        options,
        clip_verify=options.clip_verify if options.clip_verify is not None else (verify if verify is not None else fallback[0]),
        clip_strict=options.clip_strict if options.clip_strict is not None else (strict if strict is not None else fallback[1]),
    ).check()


def check_roots(roots: Iterable[str | os.PathLike]) -> list[str]:
    """The roots as ``str``; :class:`DedupUsageError` when none is given or one does not exist."""
    out = [os.fspath(r) for r in ([roots] if isinstance(roots, (str, bytes, os.PathLike)) else roots)]
    out = [os.fsdecode(r) for r in out]
    if not out:
        raise DedupUsageError("give at least one folder to look in")
    for r in out:
        if not os.path.exists(r):
            raise DedupUsageError(f"no such folder: {r}")
    return out
