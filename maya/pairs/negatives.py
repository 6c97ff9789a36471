"""Negative pairs for a pair build: hard by pHash, hard by embedding, and random.

Every negative joins two originals of one split (or one of their edited copies each); never two
originals of one group, nor two originals whose hash distance is <= :data:`NEAR_DUPLICATE_BITS`
(the folder holds the same picture twice). Distances are in bits of ``maya.hashing.DEFAULT``.
All choices draw from one generator seeded by the build's seed, so the same inputs give the same rows.
"""

from __future__ import annotations

import math

import numpy as np

from maya.hashing import DEFAULT
from maya.hashing import index as hash_index
from maya.pairs.records import KIND_HARD_EMBEDDING, KIND_HARD_PHASH, KIND_RANDOM, NEAR_DUPLICATE_BITS


class NegativeMaker:
    """Negative pairs between originals of one split; never within a group or between near-duplicates.

    ``members[i]`` lists (sha256, pHash bits) of original i and its edited copies; a negative joins a
    member of one original with a member of another. Each unordered image pair is used once.
    """

    def __init__(self, originals, split, bits, members, seed: int, errors: list[str]):
        self.originals = originals
        self.split = split
        self.bits = bits
        self.members = members
        self.group = np.array([o.group if o.group is not None else f"\0{o.index}" for o in originals], dtype=object)
        self.rng = np.random.default_rng([seed, 4])
        self.rows: list[tuple] = []
        self.used: set[tuple[str, str]] = set()
        self.by_split = {s: np.flatnonzero(split == s) for s in ("val", "test")}
        i, j, d = hash_index.pairs_within(bits, NEAR_DUPLICATE_BITS)
        self.near_of: dict[int, set[int]] = {}
        for a, b, dd in zip(i.tolist(), j.tolist(), d.tolist()):
            if self.group[a] == self.group[b]:
                continue
            self.near_of.setdefault(a, set()).add(b)
            self.near_of.setdefault(b, set()).add(a)
            errors.append(f"near-duplicate originals: {originals[a].path} and {originals[b].path} "
                          f"(pHash distance {dd}); never paired as a negative")

    def allowed(self, i: int, j: int) -> bool:
        return (i != j and self.split[i] == self.split[j] and self.group[i] != self.group[j]
                and j not in self.near_of.get(i, ()))

    def _add(self, a: str, b: str, kind: str, params: dict, i: int) -> bool:
        key = (a, b) if a < b else (b, a)
        if key in self.used:
            return False
        self.used.add(key)
        o = self.originals[i]
        self.rows.append((a, b, False, kind, params, self.split[i], o.sha256))
        return True

    def _random_member(self, i: int) -> tuple[str, int]:
        ms = self.members[i]
        return ms[int(self.rng.integers(len(ms)))]

    def _neighbour_lists(self, score_rows, count: int, descending: bool) -> list[list[tuple[int, float]]]:
        """Per original, up to ``count`` allowed others, best first, as (index, score) lists.

        ``score_rows(idx)`` gives the (len(idx), N) scores of originals ``idx`` against all
        originals (pHash distances, or cosine similarities with ``descending``). Computed 256 rows
        at a time, so memory is O(256 N), not O(N^2).
        """
        n = len(self.originals)
        out = []
        for start in range(0, n, 256):
            idx = np.arange(start, min(n, start + 256))
            keys = score_rows(idx).astype(np.float64)
            if descending:
                keys = -keys
            for r, i in enumerate(idx.tolist()):
                key = keys[r]
                ok = np.flatnonzero((self.split == self.split[i]) & (self.group != self.group[i]))
                near = self.near_of.get(i, ())
                take = min(len(ok), count + len(near))
                if take < len(ok):
                    ok = ok[np.argpartition(key[ok], take - 1)[:take]]
                ok = ok[np.lexsort((ok, key[ok]))]  # by score, ties by index
                picked = [(int(j), float(-key[j] if descending else key[j])) for j in ok.tolist() if j not in near]
                out.append(picked[:count])
        return out

    def _round_robin(self, n_wanted: int, neighbours, make, descending: bool) -> int:
        """Rank by rank: every original's nearest allowed other first (the closest such pairs
        first), then every original's second nearest, and so on; each unordered pair of originals
        once per pass. ``make(i, j, rank, score)`` adds one negative and says whether it did. When a
        pass has gone through every candidate and more are wanted (few originals), another pass
        takes the next image pair of the same pairs of originals."""
        order: list[tuple[int, int, int, float]] = []
        seen: set[tuple[int, int]] = set()
        depth = max((len(nb) for nb in neighbours), default=0)
        sign = -1.0 if descending else 1.0
        for rank in range(depth):
            level = [(sign * nb[rank][1], i, nb[rank][0]) for i, nb in enumerate(neighbours) if rank < len(nb)]
            for _, i, j in sorted(level):
                key = (min(i, j), max(i, j))
                if key not in seen:
                    seen.add(key)
                    order.append((i, j, rank + 1, neighbours[i][rank][1]))
        made = 0
        while made < n_wanted:
            before = made
            for i, j, rank, score in order:
                if made >= n_wanted:
                    break
                made += make(i, j, rank, score)
            if made == before:
                break
        return made

    def _ranks(self, n_wanted: int) -> int:
        """Neighbours to look at per original: enough for ``n_wanted`` pairs, with slack for
        pairs met from both ends and image pairs already taken."""
        n = len(self.originals)
        return max(1, min(n - 1, 2 * math.ceil(n_wanted / n) + 2))

    def hard_by_phash(self, n_wanted: int) -> int:
        """Nearest originals by pHash; of their images, the closest pair in pHash not yet used."""
        if n_wanted <= 0:
            return 0
        neighbours = self._neighbour_lists(
            lambda idx: DEFAULT.distance(self.bits[idx][:, None], self.bits[None, :]), self._ranks(n_wanted), descending=False)

        def make(i, j, rank, dist):
            mi, mj = self.members[i], self.members[j]
            bi = np.array([b for _, b in mi], dtype=np.uint64)
            bj = np.array([b for _, b in mj], dtype=np.uint64)
            d = DEFAULT.distance(bi[:, None], bj[None, :]).astype(np.int64)
            for flat in np.argsort(d, axis=None, kind="stable").tolist():
                x, y = divmod(flat, len(mj))
                params = {"by": "phash", "rank": rank, "originals_distance": int(dist), "distance": int(d[x, y])}
                if self._add(mi[x][0], mj[y][0], KIND_HARD_PHASH, params, i):
                    return True
            return False

        return self._round_robin(n_wanted, neighbours, make, descending=False)

    def hard_by_embedding(self, n_wanted: int, embeddings: np.ndarray, model_id: str | None) -> int:
        """Nearest originals by cosine similarity of their embeddings; a seeded image of each."""
        if n_wanted <= 0:
            return 0
        neighbours = self._neighbour_lists(lambda idx: embeddings[idx] @ embeddings.T, self._ranks(n_wanted),
                                           descending=True)

        def make(i, j, rank, sim):
            for _ in range(8):  # a few draws, in case an image pair is taken
                (a, ba), (b, bb) = self._random_member(i), self._random_member(j)
                params = {"by": "embedding", "model": model_id, "rank": rank,
                          "originals_similarity": round(sim, 6), "distance": int(DEFAULT.distance(ba, bb))}
                if self._add(a, b, KIND_HARD_EMBEDDING, params, i):
                    return True
            return False

        return self._round_robin(n_wanted, neighbours, make, descending=True)

    def random(self, n_wanted: int) -> int:
        """Random pairs: an original uniformly, then another allowed one of its split uniformly."""
        made, tries = 0, 0
        # Originals with at least one allowed partner: others in the split, less its group, less near-duplicates.
        split_size = {s: len(idx) for s, idx in self.by_split.items()}
        group_size: dict = {}
        for g in self.group.tolist():
            group_size[g] = group_size.get(g, 0) + 1

        def partners(i: int) -> int:
            near = sum(self.split[j] == self.split[i] for j in self.near_of.get(i, ()))
            return split_size[self.split[i]] - group_size[self.group[i]] - near

        pool = np.array([i for i in range(len(self.originals)) if partners(i) > 0], dtype=np.int64)
        if n_wanted <= 0 or len(pool) == 0:
            return 0
        while made < n_wanted and tries < 50 * n_wanted + 100:
            tries += 1
            i = int(pool[self.rng.integers(len(pool))])
            same = self.by_split[self.split[i]]
            j = int(same[self.rng.integers(len(same))])
            if not self.allowed(i, j):
                continue
            (a, ba), (b, bb) = self._random_member(i), self._random_member(j)
            params = {"by": "random", "originals_distance": int(DEFAULT.distance(self.bits[i], self.bits[j])),
                      "distance": int(DEFAULT.distance(ba, bb))}
            made += self._add(a, b, KIND_RANDOM, params, i)
        return made
