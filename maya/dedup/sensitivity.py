"""One knob for people who do not want four numbers: ``maya dedup --sensitivity strict|normal|loose``.

It scales whatever thresholds :mod:`maya.dedup.options` resolved (the defaults, or the study's measured
similarities), so it stays right when those change:

* pHash distances (bits): ``strict`` halves the accept distance and takes 3/4 of the radius; ``loose``
  takes 1.5x and 1.25x (capped at 64 bits).
* cosine similarities: ``strict`` closes a third of the gap to 1 (0.80 -> 0.867); ``loose`` widens the gap
  by a third (0.80 -> 0.733).

``normal`` changes nothing. A threshold the user gave explicitly (``--phash-accept`` ...) is never scaled.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from maya.errors import MayaUsageError

LEVELS = ("strict", "normal", "loose")
_BITS = {"strict": {"phash_accept": 0.5, "phash_radius": 0.75}, "normal": {},
         "loose": {"phash_accept": 1.5, "phash_radius": 1.25}}
_SIM_GAP = {"strict": 2 / 3, "normal": 1.0, "loose": 4 / 3}  # factor on (1 - similarity)


@dataclass(frozen=True)
class Sensitivity:
    """A level of :data:`LEVELS` and the threshold names the user set themselves (left as they are)."""

    level: str = "normal"
    given: frozenset[str] = frozenset()

    def __post_init__(self):
        if self.level not in LEVELS:
            raise MayaUsageError(f"--sensitivity must be one of {', '.join(LEVELS)}, got {self.level!r}")

    def apply(self, options):
        """``options`` (a resolved :class:`maya.dedup.options.DedupOptions`) with this level's thresholds."""
        if self.level == "normal":
            return options
        changes: dict = {}
        for name, factor in _BITS[self.level].items():
            if name not in self.given:
                changes[name] = min(64, max(0, round(getattr(options, name) * factor)))
        for name in ("clip_verify", "clip_strict"):
            value = getattr(options, name)
            if name not in self.given and value is not None:
                changes[name] = round(max(-1.0, min(1.0, 1 - (1 - value) * _SIM_GAP[self.level])), 4)
        out = replace(options, **changes)
        if out.phash_radius < out.phash_accept:
            out = replace(out, phash_radius=out.phash_accept)
        return out.check()
