"""What a dedup run is asked to do: its mode and thresholds, checked, and where the defaults come from.

The modes are settings of the one decision rule (:mod:`maya.rule`, see :attr:`DedupOptions.rule`), for two
distinct images with pHash distance d (bits) and embedding cosine similarity s:

* ``phash``:  d <= phash_accept.
* ``clip``:   s >= clip_strict.
* ``hybrid``: d <= phash_accept, or (d <= phash_radius and s >= clip_verify), or s >= clip_strict.
  The last clause keeps crops, flips and borders, which are far apart in pHash.
* ``clip`` and ``hybrid`` also have the local clause: s >= clip_local_floor and s >= scale + clip_local_margin,
  where the pair's scale is the larger of its two images' similarity to their ``clip_k``-th nearest neighbour
  (:func:`maya.dedup.candidates.local_scale`): a copy stands out from a sparse neighbourhood at a similarity
  far below clip_strict, while a dense region of distinct look-alikes raises its own bar.

The embedding thresholds left as None are filled by :func:`resolve_thresholds`: from the model's built-in
defaults, or from a study the user names (``--calibration``), never silently from the latest evaluate run.
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
#: How accepted pairs become groups: stars around hubs, every member a direct match of the kept file
#: (``maya.dedup.stars``, the default: it cannot chain), or connected components (chains flagged).
GROUPINGS = ("star", "components")

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
CLIP_VETO = 0.60  # a pHash accept whose similarity is below this is no match: the model disagrees strongly
#: Fallbacks per embedding family when the store holds no evaluate run of the model. Similarities are not
#: comparable across models: efficientnet-lite0's copies score 0.885-0.985 against their originals and
#: different photos at most 0.35 on the demo photos, while CLIP puts unrelated photos at 0.5-0.8.
#: Values: (clip_verify, clip_strict, clip_veto). efficientnet-lite0's were chosen on the collection benchmark
#: together with the local clause and the vote below. Until issue 13's second round they were (0.80, 0.95) with
#: neither. The band's 0.90 keeps out the halves of one retina photo (dihedral d 12, similarity 0.85) and two
#: sparse drawings' inner views (view similarity >= 0.80, whole images 0.68). The veto, 0.30, sits below every
#: pHash-accepted true pair's similarity there (lowest: 0.366, two pixelated copies) and above the 0.15 of
#: distinct near-blank pictures that share a pHash.
MODEL_FALLBACKS = {"efficientnet-lite0": (0.90, 0.97, 0.30)}
#: The local clause per embedding family: (clip_local_floor, clip_local_margin); a model not listed has it off
#: unless the flags set it. efficientnet-lite0's and the vote's (MODEL_MAJORITY) were chosen with the thresholds
#: above on the even half "a" of the bundled photos only, 8 edits + 2 chains per original, seed 0: whole photos
#: (12 originals, 131 files) and photos cut in halves (23 originals, 252 files; the phantom's right half, a mirror
#: of its left, is left out), plus one earlier draw of the halves: the highest grouping F1 holding pairwise
#: precision 1.0 on all three (benchmarks/bench_collection.py --photos a [--tiles 2] [--sweep]; the stored
#: features of those runs swept over clip_verify 0.80-0.90, clip_strict 0.90-0.97, local floor 0.5-0.7 and
#: margin 0.05-0.30, vote 0.6-0.8 with margin 0-0.1). Whole: R 0.783 -> 0.971 (bench run, P 1.000 both); halves:
#: R 0.80 -> 0.92 at P 1.000 (was P 0.94). A local margin of 0.15 and a vote margin of 0 found a little more at
#: P 0.99; 0.20 and 0.05 keep a margin. Reported on the odd half "b" (README "Collection benchmark").
#: The floor went 0.50 -> 0.55 in issue 13's third round, again on "a" only, now with a second draw (seed 1) of
#: whole and halves: its whole collection put a heavily edited chain of one photo with another, plain photo at
#: 0.506-0.516 (both outliers, scale 0.29: the margin alone let them in; P 0.983, one mixed group); 0.52-0.56 lose
#: nothing on the four "a" collections, 0.58 loses true pairs (whole, seed 0: R 0.971 -> 0.955). 0.56 would also
#: drop two pixelated copies of two halves at 0.540 / 0.557 (seed-1 halves); 0.55 keeps a margin to both sides.
MODEL_LOCAL = {"efficientnet-lite0": (0.55, 0.20)}
#: Star grouping's majority vote per embedding family (:func:`maya.dedup.stars.attach_by_majority`):
#: (clip_majority, clip_majority_margin); off for a model not listed unless set (see MODEL_LOCAL for how
#: efficientnet-lite0's were chosen: on the halves it raised recall 0.83 -> 0.92, whole photos unchanged).
MODEL_MAJORITY = {"efficientnet-lite0": (0.60, 0.05)}
#: The grid clause per embedding family (rule clause ``"grid"``, :mod:`maya.hashing.grid`): (grid_floor, grid_agree):
#: a pair the model finds at least grid_floor similar matches when at least grid_agree of its structured cells agree
#: pixel for pixel (overlaid copies); off for a model not listed unless set. See the measurements in the comment
#: of README "Overlays" and maya.hashing.grid.
MODEL_GRID = {"efficientnet-lite0": (0.30, 0.40)}
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
    clip_verify: float | None = None  # None: as measured by the study (resolve_thresholds)
    clip_strict: float | None = None
    clip_k: int = CLIP_NEIGHBOURS
    split_chains: bool = False
    grouping: str = "star"
    clip_veto: float | None = None  # a pHash accept with similarity below this is no match (None: resolved)
    keep: str = "source"  # which file of a group is kept: maya.dedup.keep.KEEP_POLICIES
    prefer: tuple[str, ...] = ()  # globs: a matching file is kept first (--prefer, repeatable)
    views: bool = True  # also compare the inner views of screenshots, memes, borders (maya.views)
    extra_views: tuple[str, ...] = ()  # fixed extra views to compare too (maya.views.EXTRA_VIEWS; default none)
    clip_local_floor: float | None = None  # the local clause's least similarity (None: resolved; nan: off)
    clip_local_margin: float | None = None  # ...and its margin over the pair's local scale (cosine)
    clip_majority: float | None = None  # star grouping's vote: similarity to most of a group (None: resolved; nan: off)
    clip_majority_margin: float | None = None  # ...and the mean's margin over the next group's (cosine)
    #: star grouping's pHash vote (maya.dedup.stars.attach_by_phash_majority): a file still left out joins the one
    #: group most of whose files are within phash_radius of it (hybrid mode). Measured on "a" (whole and halves,
    #: seeds 0 and 1, efficientnet-lite0): R 0.971 -> 1.000, 0.892 -> 0.908, 0.909 -> 0.917, 0.970 same, precision
    #: unchanged on all four. Smooth pictures (maya.hashing.grid.smooth) cast no vote and are not counted: their
    #: pHashes are alike, and before that rule 4 of 48 distinct smooth fields joined other pictures' groups
    #: (tests/test_dedup_recall.py). On by default since then: held-out "b" whole R 0.939 -> 0.954, P 1.000 both;
    #: b halves, a, and bench_views' precision unchanged. --no-phash-majority turns it off.
    phash_majority: bool = True
    grid_floor: float | None = None  # the grid clause's least similarity (None: resolved; nan: off)
    grid_agree: float | None = None  # ...and its least cell agreement, 0..1 (maya.hashing.grid.agreement)

    @property
    def uses_embeddings(self) -> bool:
        return self.mode in ("hybrid", "clip")

    @property
    def rule(self) -> Rule:
        """This mode as a setting of the one decision rule (:mod:`maya.rule`). A similarity threshold still
        None (not yet measured, see :func:`resolve_thresholds`) turns its clause off."""
        inf = math.inf
        verify = inf if self.clip_verify is None else float(self.clip_verify)
        strict = inf if self.clip_strict is None else float(self.clip_strict)
        if self.mode == "phash":
            return Rule(int(self.phash_accept), int(self.phash_accept))
        floor = inf if self.clip_local_floor is None else float(self.clip_local_floor)
        margin = inf if self.clip_local_margin is None else float(self.clip_local_margin)
        gfloor, gagree = (inf, inf) if not self.uses_grid else (float(self.grid_floor), float(self.grid_agree))
        if self.mode == "clip":  # no pHash clause, no band: the embedding alone decides
            return Rule(-1, -1, inf, strict, t_local_floor=floor, t_local_margin=margin, t_grid_floor=gfloor,
                        t_grid_agree=gagree)
        veto = -inf if self.clip_veto is None else float(self.clip_veto)
        return Rule(int(self.phash_accept), int(self.phash_radius), verify, strict, veto, floor, margin, gfloor, gagree)

    @property
    def uses_majority(self) -> bool:
        """Whether star grouping attaches left-out items by a majority vote (both of its numbers set, finite)."""
        return self.uses_embeddings and self.grouping == "star" and all(
            v is not None and math.isfinite(float(v)) for v in (self.clip_majority, self.clip_majority_margin))

    @property
    def uses_phash_majority(self) -> bool:
        """Whether star grouping attaches left-out items by the pHash vote (hybrid mode, star grouping)."""
        return self.mode == "hybrid" and self.grouping == "star" and bool(self.phash_majority)

    @property
    def uses_grid(self) -> bool:
        """Whether the rule has the grid clause (both of its numbers set and finite)."""
        return self.uses_embeddings and all(v is not None and math.isfinite(float(v))
                                            for v in (self.grid_floor, self.grid_agree))

    @property
    def uses_local(self) -> bool:
        """Whether the rule has the local clause (both of its numbers set and finite)."""
        return self.uses_embeddings and all(v is not None and math.isfinite(float(v))
                                            for v in (self.clip_local_floor, self.clip_local_margin))

    def check(self) -> "DedupOptions":
        """Return self, or raise :class:`DedupUsageError` naming the bad setting.

        ``clip_verify`` / ``clip_strict`` may be None: "as measured by the study" (see
        :func:`resolve_thresholds`), resolved once the model is known."""
        import numpy as np
        if self.mode not in MODES:
            raise DedupUsageError(f"unknown mode {self.mode!r}: use one of {', '.join(MODES)}")
        for name in ("phash_accept", "phash_radius"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v <= DEFAULT.bits:
                raise DedupUsageError(f"{name.replace('_', '-')} must be a whole number of bits in 0..{DEFAULT.bits}, got {v!r}")
        if self.mode == "hybrid" and self.phash_radius < self.phash_accept:
            raise DedupUsageError(f"phash-radius ({self.phash_radius}) must be >= phash-accept ({self.phash_accept})")
        for name in ("clip_verify", "clip_strict", "clip_veto", "clip_local_floor", "clip_majority", "grid_floor"):
            v = getattr(self, name)
            if v is None or (name in ("clip_local_floor", "clip_majority", "grid_floor") and isinstance(v, float)
                             and math.isnan(v)):
                continue
            if not isinstance(v, (int, float, np.floating)) or not -1.0 <= float(v) <= 1.0 or v != v:
                raise DedupUsageError(f"{name.replace('_', '-')} must be a cosine similarity in -1..1, got {v!r}")
        from maya.dedup.keep import KEEP_POLICIES

        if self.keep not in KEEP_POLICIES:
            raise DedupUsageError(f"unknown keep rule {self.keep!r}: use one of {', '.join(KEEP_POLICIES)}")
        if isinstance(self.prefer, (str, bytes)) or not all(isinstance(g, str) and g for g in self.prefer):
            raise DedupUsageError(f"prefer must be a list of non-empty globs, got {self.prefer!r}")
        for name in ("clip_local_margin", "clip_majority_margin"):
            m = getattr(self, name)
            if m is not None and (isinstance(m, bool) or not isinstance(m, (int, float, np.floating))
                                  or not (m != m or 0.0 <= float(m) <= 2.0)):
                raise DedupUsageError(f"{name.replace('_', '-')} must be a similarity margin in 0..2, got {m!r}")
        g = self.grid_agree
        if g is not None and (isinstance(g, bool) or not isinstance(g, (int, float, np.floating))
                              or not (g != g or 0.0 <= float(g) <= 1.0)):
            raise DedupUsageError(f"grid-agree must be a fraction of cells in 0..1, got {g!r}")
        if not isinstance(self.phash_majority, (bool, np.bool_)):
            raise DedupUsageError(f"phash-majority must be true or false, got {self.phash_majority!r}")
        if self.grouping not in GROUPINGS:
            raise DedupUsageError(f"unknown grouping {self.grouping!r}: use one of {', '.join(GROUPINGS)}")
        if isinstance(self.clip_k, bool) or not isinstance(self.clip_k, (int, np.integer)) or self.clip_k < 1:
            raise DedupUsageError(f"clip-k must be a whole number >= 1, got {self.clip_k!r}")
        from maya.views import EXTRA_VIEWS

        if isinstance(self.extra_views, (str, bytes)) or any(v not in EXTRA_VIEWS for v in self.extra_views):
            raise DedupUsageError(f"unknown extra views {self.extra_views!r}: use any of {', '.join(EXTRA_VIEWS)}")
        return self

    def as_dict(self) -> dict:
        return {"mode": self.mode, "phash_accept": int(self.phash_accept), "phash_radius": int(self.phash_radius),
                "clip_verify": None if self.clip_verify is None else float(self.clip_verify),
                "clip_strict": None if self.clip_strict is None else float(self.clip_strict),
                "clip_k": int(self.clip_k), "split_chains": bool(self.split_chains),
                "grouping": self.grouping,
                "clip_veto": None if self.clip_veto is None else float(self.clip_veto),
                "keep": self.keep, "prefer": list(self.prefer),
                "views": bool(self.views), "extra_views": list(self.extra_views),
                "clip_local_floor": _number(self.clip_local_floor),
                "clip_local_margin": _number(self.clip_local_margin),
                "clip_majority": _number(self.clip_majority),
                "clip_majority_margin": _number(self.clip_majority_margin),
                "phash_majority": bool(self.phash_majority),
                "grid_floor": _number(self.grid_floor), "grid_agree": _number(self.grid_agree)}


def _number(v) -> float | None:
    """A threshold for the JSON: None when unset or off (nan)."""
    return None if v is None or float(v) != float(v) else float(v)


#: Pair precision the calibration point must hold on the named study's val split (``--calibration``): a
#: collection has orders of magnitude more negative pairs than positive ones, so a point that is F1-best on
#: the study's balanced pairs lets through enough wrong edges to chain groups (issue 13).
CALIBRATION_PRECISION = 0.999


@dataclass(frozen=True)
class RuleSource:
    """Where a run's embedding thresholds came from, in words (the summary and the JSON say it)."""

    text: str  # e.g. "built-in defaults for efficientnet-lite0"
    evaluate_run: int | None = None  # the evaluate run calibrated on, if any


def describe_rule(options: DedupOptions) -> str:
    """The rule of ``options`` in one line of words (bits, cosine)."""
    if options.mode == "phash":
        return f"pHash d <= {options.phash_accept}"
    strict = "off" if options.clip_strict is None else f"{options.clip_strict:.3f}"
    local = (f", or similarity >= {options.clip_local_floor:.3f} and >= the pair's local scale (similarity to the "
             f"{options.clip_k}th neighbour) + {options.clip_local_margin:.3f}" if options.uses_local else "")
    if options.uses_grid:
        local += (f", or similarity >= {options.grid_floor:.3f} and >= {options.grid_agree:.2f} of the structured cells "
                  f"agreeing pixel for pixel (grid)")
    if options.uses_majority:
        local += (f"; a file left out joins the group most of whose files it resembles (similarity >= "
                  f"{options.clip_majority:.3f}, mean {options.clip_majority_margin:.3f} above any other group's)")
    if options.uses_phash_majority:
        local += (f"; a file still left out is added to the one group most of whose files are within {options.phash_radius} "
                  f"bits of it (pHash vote)")
    if options.mode == "clip":
        return f"similarity >= {strict}{local}"
    verify = "off" if options.clip_verify is None else f"{options.clip_verify:.3f}"
    veto = "" if options.clip_veto is None else f" (unless similarity < {options.clip_veto:.3f})"
    return (f"pHash d <= {options.phash_accept}{veto}, or d <= {options.phash_radius} and similarity >= {verify}, "
            f"or similarity >= {strict}{local}")


def resolve_thresholds(con, options: DedupOptions, model_name: str | None, model_id: str | None,
                       calibration: str | None = None) -> tuple[DedupOptions, RuleSource]:
    """Fill the embedding thresholds the caller left as None, and say where they came from.

    Only from a *named* source, never from whatever evaluate run happens to be latest:

    * ``calibration`` (``--calibration DATASET|RUN``): the completed evaluate run with that id, or the latest
      completed evaluate run of that dataset with this model; its val split gives the lowest similarity
      thresholds that hold pair precision >= :data:`CALIBRATION_PRECISION` (:func:`maya.store.dedup.
      calibrated_thresholds`): embedding-only pairs for ``clip_strict``, pairs in the pHash band for
      ``clip_verify``.
    * else the model's built-in defaults (:data:`MODEL_FALLBACKS`, measured on collection benchmarks),
      else the generic CLIP-like defaults.

    Thresholds given explicitly win over both. Raises :class:`DedupUsageError` for a calibration that names
    no completed evaluate run of this model.
    """
    from dataclasses import replace

    names = ("clip_verify", "clip_strict", "clip_veto")
    given = [n for n in names if getattr(options, n) is not None]
    if not options.uses_embeddings:
        return options, RuleSource("pHash thresholds (built-in defaults or flags); no model")
    if calibration is not None:
        from maya.store import dedup as dedup_store

        run_id = dedup_store.calibration_run(con, str(calibration), model_id)
        if run_id is None:
            raise DedupUsageError(
                f"--calibration {calibration}: no completed evaluate run of model {model_id} with that id or dataset "
                f"(run `maya evaluate --dataset NAME` with this model first)")
        values = dedup_store.calibrated_thresholds(con, run_id, options.phash_accept, options.phash_radius,
                                                   CALIBRATION_PRECISION)
        source = RuleSource(f"calibration: evaluate run {run_id}, val pairs at precision >= {CALIBRATION_PRECISION}",
                            run_id)
    elif model_name in MODEL_FALLBACKS:
        values = MODEL_FALLBACKS[model_name]
        source = RuleSource(f"built-in defaults for {model_name}")
    else:
        values = (CLIP_VERIFY, CLIP_STRICT, CLIP_VETO)
        source = RuleSource("built-in defaults for CLIP-like models (not measured for this model; "
                            "--calibration DATASET names a study to take them from)")
    if len(given) == len(names):
        source = RuleSource("thresholds given as flags")
    elif given:
        flags = ", ".join(n.replace("_", "-") for n in given)
        source = RuleSource(f"{source.text}; {flags} given as flags", source.evaluate_run)
    filled = {n: getattr(options, n) if getattr(options, n) is not None else v for n, v in zip(names, values)}
    for local, table, what in ((("clip_local_floor", "clip_local_margin"), MODEL_LOCAL, "local clause"),
                               (("clip_majority", "clip_majority_margin"), MODEL_MAJORITY, "majority vote"),
                               (("grid_floor", "grid_agree"), MODEL_GRID, "grid clause")):
        if all(getattr(options, n) is not None for n in local):
            continue
        values = table.get(model_name, (math.nan, math.nan))  # the model's own, measured; else off
        filled.update({n: getattr(options, n) if getattr(options, n) is not None else v for n, v in zip(local, values)})
        if model_name in table and not source.text.startswith(f"built-in defaults for {model_name}"):
            source = RuleSource(f"{source.text}; {what}: built-in defaults for {model_name}", source.evaluate_run)
    return replace(options, **filled).check(), source


def check_roots(roots: Iterable[str | os.PathLike]) -> list[str]:
    """The roots as ``str``; :class:`DedupUsageError` when none is given or one does not exist."""
    out = [os.fspath(r) for r in ([roots] if isinstance(roots, (str, bytes, os.PathLike)) else roots)]
    out = [os.path.expanduser(os.fsdecode(r)) for r in out]  # "~/Pictures" as a shell would
    if not out:
        raise DedupUsageError("give at least one folder to look in")
    for r in out:
        if not os.path.exists(r):
            raise DedupUsageError(f"no such folder: {r}")
    return out
