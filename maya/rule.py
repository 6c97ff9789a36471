"""The one decision rule: is a pair of images a match, given their pHash distance and embedding similarity?

For a pair with pHash distance ``d`` (bits, 0..64; negative = unknown because an image failed) and
embedding cosine similarity ``s`` (-1..1; NaN = no embedding), a :class:`Rule` says match when

* ``d <= t_accept``                         -- clause ``"phash"``: close enough without asking the model,
  unless the model disagrees strongly (``s < t_veto``; a known ``s`` only; default ``-inf``: no veto);
* ``t_accept < d <= t_reject and s >= t_sim`` -- clause ``"phash+clip"``: the model confirms the band;
* ``s >= t_strict``                         -- clause ``"clip"``: the embedding alone is sure
  (dedup's embedding-only clause: crops, flips and borders are far apart in pHash);
* ``s >= t_local_floor and s >= scale + t_local_margin`` -- clause ``"clip"`` too (the model alone decides),
  at the pair's *local scale* (``scale``: the larger of the two images' similarity to their k-th nearest
  neighbour, :func:`maya.dedup.candidates.local_scale`): where an image's neighbourhood is sparse (its
  k-th neighbour is far) a copy that the model scores well below ``t_strict`` still stands out, while in a
  dense region of similar but distinct pictures (textures, a photo series) the bar rises with the
  neighbours. Off without a ``scale`` (the study, search) or with ``t_local_floor = inf``;
* ``s >= t_grid_floor and grid >= t_grid_agree`` -- clause ``"grid"``: the model finds the pair plausible and
  most of the two pictures' structured cells agree pixel for pixel (``grid``: the pair's cell agreement,
  0..1, :func:`maya.hashing.grid.agreement`): an overlay (emoji, shapes, a caption) covers part of a picture
  and moves both the global pHash and the embedding, but leaves the rest of its cells as they were. Off
  without a ``grid`` (the study, search) or with ``t_grid_floor = inf``;

and never when ``d`` is unknown. Images too uniform for pHash (:mod:`maya.hashing.structure`) reach the
rule with ``d`` beyond every band, so only the model's clause can accept them (the hook is
:func:`maya.dedup.candidates.decide`). ``d > t_reject`` with ``s < t_strict`` is no match. The study's methods
and dedup's modes are settings of this one rule (``t_accept = -1``: no accept band; ``t_reject = 64``: no
reject band; ``t_strict = inf``: no embedding-only clause, the study's case):

==================  =============  =============  ===========  ===========
setting             t_accept       t_reject       t_sim        t_strict
==================  =============  =============  ===========  ===========
study phash         t              t              --           inf
study clip          -1             64             t            inf
study hybrid        -1             t_h            t_c          inf
study cascade       t_a            t_r            t_c          inf
dedup phash         phash_accept   phash_accept   --           inf
dedup clip          -1             -1             --           clip_strict
dedup hybrid        phash_accept   phash_radius   clip_verify  clip_strict
==================  =============  =============  ===========  ===========
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

#: Clause labels, in the order they are tried (dedup reports the first that accepted a pair).
CLAUSES = ("phash", "phash+clip", "clip", "grid")


@dataclass(frozen=True)
class Rule:
    """Thresholds of the rule: bits for ``t_accept`` / ``t_reject``, cosine similarity for ``t_sim`` /
    ``t_strict`` (``inf`` or NaN turns a similarity clause off)."""

    t_accept: int
    t_reject: int
    t_sim: float = math.inf
    t_strict: float = math.inf
    t_veto: float = -math.inf  # a pHash accept with a known similarity below this is no match
    t_local_floor: float = math.inf  # the local clause's least similarity (inf: no local clause)
    t_local_margin: float = math.inf  # ...and how far above the pair's local scale it must be
    t_grid_floor: float = math.inf  # the grid clause's least similarity (inf: no grid clause)
    t_grid_agree: float = math.inf  # ...and its least cell agreement (0..1)

    def matches(self, d, s=None, scale=None, grid=None) -> "np.ndarray":
        """Bool (N,): whether each pair matches. ``d`` (N,) ints; ``s`` (N,) floats or None (no embeddings);
        ``scale`` (N,) floats (the pairs' local scale; +inf: none) or None (no local clause); ``grid`` (N,)
        floats (the pairs' cell agreement; NaN: unknown) or None (no grid clause)."""
        import numpy as np  # here, so that reading the thresholds (the CLI's --help) stays light

        d = np.asarray(d)
        match = d <= self.t_accept
        if s is not None:
            s = np.asarray(s, dtype=np.float64)
            with np.errstate(invalid="ignore"):
                match = match & ~(s < self.t_veto)
                match = match | ((d > self.t_accept) & (d <= self.t_reject) & (s >= self.t_sim))
                if not _off(self.t_strict):
                    match = match | (s >= self.t_strict)
                match = match | self._local(s, scale) | self._grid(s, grid)
        return (d >= 0) & match

    def _local(self, s, scale) -> "np.ndarray":
        """Bool (N,): the local clause (see the module docstring); all False when it is off."""
        import numpy as np

        if scale is None or _off(self.t_local_floor) or _off(self.t_local_margin):
            return np.zeros(np.shape(s), bool)
        scale = np.asarray(scale, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            return (s >= self.t_local_floor) & (s >= scale + self.t_local_margin)

    def _grid(self, s, grid) -> "np.ndarray":
        """Bool (N,): the grid clause (see the module docstring); all False when it is off."""
        import numpy as np

        if grid is None or _off(self.t_grid_floor) or _off(self.t_grid_agree):
            return np.zeros(np.shape(s), bool)
        grid = np.asarray(grid, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            return (s >= self.t_grid_floor) & (grid >= self.t_grid_agree)

    def clauses(self, d, s=None, scale=None, grid=None) -> "np.ndarray":
        """Object (N,): the first clause that accepted each pair (:data:`CLAUSES`), or ``""`` (no match).
        Arguments as for :meth:`matches`."""
        import numpy as np

        d = np.asarray(d, dtype=np.int64)
        out = np.full(d.shape, "", dtype=object)
        known = d >= 0
        out[known & (d <= self.t_accept)] = "phash"
        if s is not None:
            s = np.asarray(s, dtype=np.float64)
            with np.errstate(invalid="ignore"):
                out[(out == "phash") & (s < self.t_veto)] = ""
                band = (out == "") & known & (d > self.t_accept) & (d <= self.t_reject) & (s >= self.t_sim)
                out[band] = "phash+clip"
                if not _off(self.t_strict):
                    out[(out == "") & known & (s >= self.t_strict)] = "clip"
                out[(out == "") & known & self._local(s, scale)] = "clip"
                out[(out == "") & known & self._grid(s, grid)] = "grid"
        return out


def _off(t: float) -> bool:
    return t != t or t == math.inf
