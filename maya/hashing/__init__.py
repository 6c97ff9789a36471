"""Perceptual hashes behind one small interface (:class:`Hasher`), and the radius search over them.

``DEFAULT`` is the hash the study and dedup use (pHash, ``"phash64-v2"``); :func:`get` finds a
registered one by its algorithm id. A new hash is a module that builds a :class:`Hasher`, registered
here.
"""

from __future__ import annotations

from maya.hashing.base import Hasher, hamming
from maya.hashing.phash import PHASH

_REGISTRY: dict[str, Hasher] = {}


def register(hasher: Hasher) -> Hasher:
    """Make ``hasher`` findable by :func:`get` under its name. Returns it."""
    known = _REGISTRY.get(hasher.name)
    if known is not None and known is not hasher:
        raise ValueError(f"a different hasher is already registered as {hasher.name!r}")
    _REGISTRY[hasher.name] = hasher
    return hasher


def get(name: str) -> Hasher:
    """The registered hasher whose algorithm id is ``name``."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown hash algorithm {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def names() -> list[str]:
    """Algorithm ids of the registered hashers, sorted."""
    return sorted(_REGISTRY)


#: The hash the study and dedup use.
DEFAULT: Hasher = register(PHASH)

__all__ = ["DEFAULT", "Hasher", "get", "hamming", "names", "register"]
