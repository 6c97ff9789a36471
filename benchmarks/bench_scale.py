"""Search at scale: all pairs within a radius among N hashes, and the CLIP top-k self-join.

    python benchmarks/bench_scale.py [--sizes 10000,100000,1000000] [--only phash|clip]
                                     [--radius 8] [--sample-rows 2000] [--repeats 3] [--seed 0]

pHash section: N synthetic 64-bit hashes, 70% uniformly random and 30% near-copies of them (a
random base hash with 0-8 distinct random bits flipped), so there are ~0.3 N true pairs. For each
N it times ``maya.hashing.index.pairs_within(h, radius)`` (best of ``--repeats``; CPU seconds and the
peak memory of the call, by tracemalloc, in a separate run) against two exact brute forces:

* faiss ``IndexBinaryFlat.range_search`` (all N queries against the index: N^2 distances, both
  orders; only if faiss is importable — ``pip install faiss-cpu``, not a Maya dependency);
* chunked numpy, upper triangle only (N^2/2 XOR + popcount).

Where a brute force over all rows would take too long (N > ``--full-brute-max``), it is timed on
``--sample-rows`` random rows against all N and extrapolated linearly in rows (marked "extrap").
Recall is Maya's pairs against the exact pairs: all of them where a brute force ran in full, else
those of the sampled rows. The cost-growth exponent between consecutive sizes is
log(t2/t1)/log(N2/N1).

The LAST line is ``phash_speedup_vs_bruteforce_1M: X`` = the faster brute force at N=1,000,000
(measured or extrapolated) / Maya's time, or ``n/a`` when 1M was not among the sizes.

Adding a section: write ``def section_NAME(args) -> list[str]`` (the lines it prints last, e.g.
its own ``..._1M: X`` summary) and register it in ``SECTIONS``.

CLIP section (``--only clip``): see :func:`section_clip`; it ends with ``clip_topk_1M: seconds=S recall=R``
when 1M is among the sizes (top-``--clip-k`` self-join, approximate with faiss, recall measured).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import numpy as np  # noqa: E402

# ------------------------------------------------------------------------------------------------
# data


def near_copy_hashes(n: int, seed: int = 0, near_copy_fraction: float = 0.3, max_flips: int = 8) -> np.ndarray:
    """(n,) uint64: random base hashes plus near-copies (base with 0..max_flips distinct bits flipped)."""
    rng = np.random.default_rng(seed)
    n_copy = int(n * near_copy_fraction)
    base = rng.integers(0, 2**64, size=n - n_copy, dtype=np.uint64)
    src = rng.integers(0, base.size, n_copy)
    k = rng.integers(0, max_flips + 1, n_copy)
    masks = np.zeros(n_copy, np.uint64)
    for lo in range(0, n_copy, 100_000):  # bounded memory: (chunk, 64) at a time
        hi = min(n_copy, lo + 100_000)
        bit = np.argsort(rng.random((hi - lo, 64)), axis=1).astype(np.uint64)
        chosen = np.arange(64)[None, :] < k[lo:hi, None]
        masks[lo:hi] = np.bitwise_or.reduce(np.where(chosen, np.uint64(1) << bit, np.uint64(0)), axis=1)
    h = np.concatenate([base, base[src] ^ masks])
    return h[rng.permutation(n)]


# ------------------------------------------------------------------------------------------------
# brute forces


def _block_rows(n: int) -> int:
    """Rows per block so that a block's distance matrix stays ~4M entries (cache-friendly)."""
    return max(1, (1 << 22) // max(n, 1))


def numpy_rows_within(h: np.ndarray, rows: np.ndarray, radius: int):
    """Exact: for each row r in ``rows``, all j != r with distance <= radius. Returns (r, j)."""
    block = _block_rows(h.size)
    out_r, out_j = [], []
    for lo in range(0, rows.size, block):
        r = rows[lo : lo + block]
        d = np.bitwise_count(h[r][:, None] ^ h[None, :])
        a, j = np.nonzero(d <= radius)
        keep = r[a] != j
        out_r.append(r[a][keep])
        out_j.append(j[keep])
    return np.concatenate(out_r), np.concatenate(out_j)


def numpy_triangle_seconds(h: np.ndarray, radius: int):
    """Time of the exact upper-triangle brute force; returns (seconds, i, j)."""
    n = h.size
    block = _block_rows(n)
    t0 = time.perf_counter()
    pairs_i, pairs_j = [], []
    for lo in range(0, n, block):
        d = np.bitwise_count(h[lo : lo + block][:, None] ^ h[None, lo:])
        a, b = np.nonzero(d <= radius)
        keep = b > a
        pairs_i.append(a[keep] + lo)
        pairs_j.append(b[keep] + lo)
    seconds = time.perf_counter() - t0
    return seconds, np.concatenate(pairs_i), np.concatenate(pairs_j)


def faiss_index(h: np.ndarray):
    try:
        import faiss
    except ImportError:
        return None
    index = faiss.IndexBinaryFlat(64)
    index.add(_faiss_codes(h))
    return index


def _faiss_codes(h: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(h.astype(">u8").view(np.uint8).reshape(-1, 8))


def faiss_range_seconds(index, h: np.ndarray, rows: np.ndarray, radius: int) -> float:
    """Seconds for faiss to range-search ``rows`` against the whole index (distance <= radius)."""
    t0 = time.perf_counter()
    # faiss keeps distances strictly below the radius it is given
    index.range_search(_faiss_codes(h[rows]), radius + 1)
    return time.perf_counter() - t0


# ------------------------------------------------------------------------------------------------
# the pHash section


def _pair_keys(i, j, n):
    return np.asarray(i, np.int64) * n + np.asarray(j, np.int64)


def section_phash(args) -> list[str]:
    from maya.hashing.index import pairs_within

    radius = args.radius
    rows_out = []
    maya_seconds, maya_cpu = {}, {}
    brute_1m = None
    for n in args.sizes:
        h = near_copy_hashes(n, seed=args.seed)
        # Maya: best of repeats (1M: 2), CPU time alongside; memory in a separate traced run
        repeats = args.repeats if n <= 200_000 else max(1, min(args.repeats, 2))
        best = (math.inf, math.inf)
        for _ in range(repeats):
            c0, t0 = time.process_time(), time.perf_counter()
            i, j, d = pairs_within(h, radius)
            best = min(best, (time.perf_counter() - t0, time.process_time() - c0))
        wall, cpu = best
        tracemalloc.start()
        pairs_within(h, radius)
        peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        maya_seconds[n] = wall
        maya_cpu[n] = cpu
        found = _pair_keys(i, j, n)

        # exact reference + brute-force timings
        full = n <= args.full_brute_max
        rng = np.random.default_rng(args.seed + 1)
        if full:
            np_seconds, ei, ej = numpy_triangle_seconds(h, radius)
            exact = _pair_keys(ei, ej, n)
            recall = np.isin(exact, found).mean() if exact.size else 1.0
            extra = np.setdiff1d(found, exact).size
            np_label = "full"
        else:
            rows = np.sort(rng.choice(n, min(args.sample_rows, n), replace=False))
            t0 = time.perf_counter()
            r, c = numpy_rows_within(h, rows, radius)
            # upper triangle: each row against ~n/2 others on average
            np_seconds = (time.perf_counter() - t0) * n / rows.size / 2
            exact = _pair_keys(np.minimum(r, c), np.maximum(r, c), n)
            exact = np.unique(exact)
            in_rows = np.isin(i, rows) | np.isin(j, rows)
            recall = np.isin(exact, found[in_rows]).mean() if exact.size else 1.0
            extra = np.setdiff1d(found[in_rows], exact).size
            np_label = f"extrap {rows.size} rows"

        index = faiss_index(h)
        if index is not None:
            if full:
                fa_rows = np.arange(n)
                fa_seconds = faiss_range_seconds(index, h, fa_rows, radius)
                fa_label = "full"
            else:
                fa_rows = np.sort(rng.choice(n, min(args.sample_rows, n), replace=False))
                fa_seconds = faiss_range_seconds(index, h, fa_rows, radius) * n / fa_rows.size
                fa_label = f"extrap {fa_rows.size} rows"
        brute = min(np_seconds, fa_seconds) if index is not None else np_seconds
        if n == 1_000_000:
            brute_1m = brute
        rows_out.append((n, wall, cpu, peak_mb, i.size, recall, extra, np_seconds, np_label,
                         fa_seconds if index is not None else None,
                         fa_label if index is not None else "faiss not installed", brute / wall))
        print(f"  N={n:,}: maya {wall:.3f}s, {i.size:,} pairs, recall {recall:.4f}", file=sys.stderr,
              flush=True)

    lines = [f"pHash radius-{radius} all-pairs search, 30% near-copies (0-8 bits flipped), "
             f"{os.cpu_count()} CPUs",
             f"{'N':>10} {'maya s':>8} {'maya cpu':>9} {'peak MB':>8} {'pairs':>10} {'recall':>7} {'wrong':>6} "
             f"{'numpy brute s':>14} {'':<17} {'faiss flat s':>13} {'':<17} {'speedup':>8}"]
    for (n, wall, cpu, peak, npairs, recall, extra, nps, npl, fas, fal, speed) in rows_out:
        fa_text = f"{fas:>13.2f}" if fas is not None else f"{'-':>13}"
        lines.append(f"{n:>10,} {wall:>8.3f} {cpu:>9.3f} {peak:>8.1f} {npairs:>10,} {recall:>7.4f} {extra:>6} "
                     f"{nps:>14.2f} {npl:<17} {fa_text} {fal:<17} {speed:>7.1f}x")
    sizes = sorted(maya_seconds)
    for a, b in zip(sizes, sizes[1:]):
        wall_exp = math.log(maya_seconds[b] / maya_seconds[a]) / math.log(b / a)
        cpu_exp = math.log(maya_cpu[b] / maya_cpu[a]) / math.log(b / a)
        lines.append(f"maya cost growth {a:,} -> {b:,}: wall N^{wall_exp:.2f}, cpu N^{cpu_exp:.2f}")
    lines.append("speedup = faster brute force / maya (wall seconds); 'wrong' = reported pairs not in "
                 "the exact set")
    lines.append("phash_speedup_vs_bruteforce_1M: " + (f"{brute_1m / maya_seconds[1_000_000]:.1f}"
                                                       if brute_1m is not None else "n/a"))
    return lines


def unit_vectors(n: int, dim: int, seed: int = 0, near_copy_fraction: float = 0.3, chunk: int = 65536):
    """(n, dim) float32 unit rows, ``near_copy_fraction`` of them small perturbations of others; built in
    chunks so the only big allocation is the answer itself."""
    rng = np.random.default_rng(seed)
    v = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        v[start:stop] = rng.standard_normal((stop - start, dim), dtype=np.float32)
    copies = rng.random(n) < near_copy_fraction
    src = rng.integers(0, n, size=int(copies.sum()))
    idx = np.flatnonzero(copies)
    for start in range(0, idx.size, chunk):
        sl = slice(start, start + chunk)
        v[idx[sl]] = v[src[sl]] + 0.3 * rng.standard_normal((idx[sl].size, dim), dtype=np.float32)
    for start in range(0, n, chunk):
        blk = v[start:start + chunk]
        blk /= np.linalg.norm(blk, axis=1, keepdims=True)
    return v


def _size_label(n: int) -> str:
    for unit, div in (("M", 1_000_000), ("k", 1000)):
        if n >= div and n % div == 0:
            return f"{n // div}{unit}"
    return str(n)


def section_clip(args) -> list[str]:
    """CLIP top-k self-join: exact (maya.embedding.knn.clip_topk: blockwise matrix products, never an N x N
    matrix) and, beyond --clip-full-max with faiss installed, approximate (maya.embedding.ann: IVF).

    Exact: all rows up to --clip-full-max; beyond, a sample of --clip-sample-rows query rows against all N,
    the time scaled to N rows (stated as extrapolated). Approximate: the whole self-join, index build
    included, timed; its recall is measured, never assumed: for --clip-recall-rows sampled rows the exact
    top-k gives the true near-copy pairs (similarity >= --clip-pair-threshold), and recall is the fraction
    the approximate answer lists from either side (as dedup joins them). Memory: the extra peak of the exact
    search (tracemalloc) next to what an N x N float32 matrix would need. Each size ends with
    ``clip_topk_<N>: seconds=S recall=R`` (the approximate run where there is one, else exact, recall 1)."""
    import tracemalloc

    from maya.embedding import ann
    from maya.embedding.knn import clip_topk

    dim, k = args.clip_dim, args.clip_k
    lines = [f"CLIP top-{k} self-join, {dim}-d float32 unit vectors (30% near-copies), {os.cpu_count()} CPUs",
             f"{'N':>10} {'seconds':>10} {'how':<26} {'recall':>7} {'vectors MB':>11} {'search peak MB':>15} "
             f"{'N x N would be':>15}"]
    summary = []
    for n in args.sizes:
        v = unit_vectors(n, dim, seed=args.seed)
        full = n <= args.clip_full_max
        rows = slice(None) if full else slice(0, min(args.clip_sample_rows, n))
        tracemalloc.start()
        t0 = time.perf_counter()
        index, sim = clip_topk(v, k, rows=rows)
        seconds = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        searched = index.shape[0]
        total = seconds * n / searched
        how = "exact, all rows" if full else f"exact, extrap {searched:,} rows"
        lines.append(f"{n:>10,} {total:>10.1f} {how:<26} {1.0:>7.4f} {v.nbytes / 2**20:>11.0f} {peak:>15.0f} "
                     f"{n * n * 4 / 2**30:>13.0f} GB")
        print(f"  N={n:,}: clip top-{k} exact {total:.1f}s ({how})", file=sys.stderr, flush=True)
        best = (total, 1.0)
        del index, sim
        if not full and ann.faiss_available():
            t0, c0 = time.perf_counter(), time.process_time()
            built = ann.build_ivf(v, codes=args.clip_codes)
            t_build = time.perf_counter() - t0
            nprobe = args.clip_nprobe or ann.DEFAULT_NPROBE
            index, sim = ann.self_topk(v, k, method="ivf", index=built, nprobe=nprobe)
            seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
            del built
            sample = np.random.default_rng(args.seed + 1).choice(n, min(n, args.clip_recall_rows), replace=False)
            recall, true_pairs = ann.recall_against_exact(v, index, sim, args.clip_pair_threshold, sample)
            how = f"faiss ivf-{args.clip_codes} nprobe {nprobe}"
            lines.append(f"{n:>10,} {seconds:>10.1f} {how:<26} {recall:>7.4f} {v.nbytes / 2**20:>11.0f} "
                         f"{'':>15} {'':>15}  cpu_seconds={cpu:.1f}")
            lines.append(f"{'':>10} of which index build {t_build:.1f}s; CPU {cpu:.1f}s over {os.cpu_count()} CPUs "
                         f"(wall above CPU / CPUs: other processes had the cores)")
            lines.append(f"{'':>10} recall: {true_pairs:,} true pairs (sim >= {args.clip_pair_threshold}) of "
                         f"{sample.size:,} sampled rows, found from either side")
            print(f"  N={n:,}: clip top-{k} {how} {seconds:.1f}s recall {recall:.4f}", file=sys.stderr, flush=True)
            best = (seconds, recall)
            del index, sim
        elif not full:
            lines.append(f"{'':>10} faiss not installed (pip install 'mirror-of-maya[ann]'): exact only")
        summary.append(f"clip_topk_{_size_label(n)}: seconds={best[0]:.1f} recall={best[1]:.4f}")
        del v
    lines.append("search peak = extra memory of the exact search (block working set + answer), not the vectors")
    return lines + summary


SECTIONS = {"phash": section_phash, "clip": section_clip}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10000,100000,1000000",
                    type=lambda s: [int(float(x)) for x in s.split(",") if x])
    ap.add_argument("--only", choices=("phash", "clip"), help="run one section only")
    ap.add_argument("--radius", type=int, default=8)
    ap.add_argument("--sample-rows", type=int, default=2000, help="rows for extrapolated brute force")
    ap.add_argument("--full-brute-max", type=int, default=100_000,
                    help="largest N searched in full by brute force")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--clip-dim", type=int, default=512)
    ap.add_argument("--clip-k", type=int, default=16)
    ap.add_argument("--clip-full-max", type=int, default=10_000, help="largest N searched in full")
    ap.add_argument("--clip-sample-rows", type=int, default=1024, help="query rows timed exactly beyond that")
    ap.add_argument("--clip-recall-rows", type=int, default=2000, help="sampled rows the ANN recall is measured on")
    ap.add_argument("--clip-pair-threshold", type=float, default=0.8,
                    help="similarity of a true near-copy pair (copies here score ~0.96, unrelated rows < 0.3)")
    ap.add_argument("--clip-nprobe", type=int, default=None,
                    help="IVF cells probed per query (default maya.embedding.ann.DEFAULT_NPROBE)")
    ap.add_argument("--clip-codes", choices=("flat", "pq"), default="pq", help="IVF codes (maya.embedding.ann)")
    args = ap.parse_args(argv)
    names = [args.only] if args.only else list(SECTIONS)
    missing = [n for n in names if n not in SECTIONS]
    if missing:
        print(f"section not written yet: {', '.join(missing)}", file=sys.stderr)
        return 2
    lines = []
    for name in names:
        lines += SECTIONS[name](args)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
