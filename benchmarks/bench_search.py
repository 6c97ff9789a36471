"""Query latency of ``maya search`` against a large synthetic collection, after decode.

    python benchmarks/bench_search.py [--size 1000000] [--queries 200] [--dim 512] [--neighbours auto]

Builds an index of ``--size`` contents in memory: pHash bits (70 % random, 30 % near copies of others,
as in bench_scale.py) and unit embeddings (likewise, copies ~0.96 similar), one ``files`` row each in an
in-memory DuckDB store (the only thing a search asks the store for: the paths of its matches). Queries
are what decoding would hand over: ``--queries`` edited copies of collection entries (hash with 0-4 bits
flipped, vector plus noise: similarity ~0.96) and as many outsiders (random hash and vector). Each query
is matched alone (``maya.index.search.Collection.match``: hash radius search, embedding neighbours, the
decision rule, paths: read from the store once by the held collection) and timed; then all of them in one
batch. Prints the build time of the neighbour index (faiss IVF beyond ``maya.embedding.ann.EXACT_MAX``),
the time a second collection takes to load the one the first saved (``maya.index.ann_file``), the latencies, how many edited copies
found their original and how many outsiders matched anything, and the same run's baseline (the first
``--baseline-queries`` queries again the way a search ran before: paths asked of the store at each query,
faiss on all threads for a single query); the last line is
``search_latency_<N>: median_ms=X batch_ms_per_query=Y``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_scale import near_copy_hashes, unit_vectors, _size_label  # noqa: E402


def main(argv=None) -> int:
    import duckdb

    from maya import store
    from maya.dedup.options import DedupOptions
    from maya.embedding import ann
    from maya.index.collection import IndexPart, part_path
    from maya.index.search import Collection, QueryFeatures

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=200, help="edited copies, and as many outsiders")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--neighbours", choices=("auto", "exact", "ivf"), default="auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--baseline-queries", type=int, default=50, help="queries timed the old way too (0: none)")
    args = ap.parse_args(argv)
    n, q = args.size, args.queries
    rng = np.random.default_rng([args.seed, 1])  # queries: a stream of their own, not the collection's

    t0 = time.perf_counter()
    hashes = near_copy_hashes(n, seed=args.seed)
    vectors = unit_vectors(n, args.dim, seed=args.seed)
    shas = np.array([f"{i:064x}" for i in range(n)], dtype="S64")
    con = duckdb.connect(":memory:")
    store.apply_schema(con)
    text = shas.astype("U64").astype(object)
    store.insert_rows(con, "files", {"path": np.char.add("/photos/", shas.astype("U64")).astype(object),
                                     "sha256": text, "status": np.full(n, "ok", dtype=object)})
    options = DedupOptions("hybrid", 8, 16, 0.80, 0.90).check()
    model_id = f"synthetic-{args.dim}"
    hash_part = IndexPart("hashes", "phash", shas, hashes, (n, n - 1))
    embed_part = IndexPart("embeddings", model_id, shas, vectors, (n, n - 1))
    data_s = time.perf_counter() - t0
    print(f"collection of {n:,}: data and store rows in {data_s:.1f}s, {os.cpu_count()} CPUs", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory() as folder:
        ann_path = part_path(folder, "ann", model_id)
        t0 = time.perf_counter()
        collection = Collection(con, options, model_id, hash_part, embed_part, neighbours=args.neighbours,
                                ann_path=ann_path)
        first_s = time.perf_counter() - t0
        kept = ""
        if collection.method == "ivf":  # what a later search of the same collection does: load what was saved
            t0 = time.perf_counter()
            collection = Collection(con, options, model_id, hash_part, embed_part, neighbours=args.neighbours,
                                    ann_path=ann_path)
            kept = (f"; faiss index {collection.ann_how} by the next search in {time.perf_counter() - t0:.1f}s "
                    f"({os.path.getsize(ann_path) / 2**20:.0f} MB file, codes only)")
    print(f"neighbour index: {collection.method}{'' if collection.method == 'exact' else ', faiss built'} "
          f"in {first_s:.1f}s{kept}", flush=True)

    src = rng.choice(n, q, replace=False)
    flips = rng.integers(0, 5, q)
    qh = hashes[src].copy()
    for i, f in enumerate(flips):
        for b in rng.choice(64, f, replace=False):
            qh[i] ^= np.uint64(1) << np.uint64(int(b))
    qv = vectors[src] + 0.3 * rng.standard_normal((q, args.dim)).astype(np.float32) / np.sqrt(args.dim / 512)
    out_h = rng.integers(0, 2**63, q, dtype=np.int64).astype(np.uint64) * np.uint64(2) + np.uint64(1)
    out_v = rng.standard_normal((q, args.dim)).astype(np.float32)
    allv = np.concatenate([qv, out_v])
    allv /= np.linalg.norm(allv, axis=1, keepdims=True)
    allh = np.concatenate([qh, out_h])
    paths = [f"/queries/copy-{i}.jpg" for i in range(q)] + [f"/queries/outsider-{i}.jpg" for i in range(q)]
    queries = QueryFeatures(paths, [f"q{i}" for i in range(2 * q)], allh, allv, [])

    one = []
    results = []
    for i in range(2 * q):
        single = QueryFeatures(paths[i:i + 1], queries.shas[i:i + 1], allh[i:i + 1], allv[i:i + 1], [])
        t0 = time.perf_counter()
        results += collection.match(single, top=10)
        one.append(time.perf_counter() - t0)
    # the same run's baseline: the first --baseline-queries queries again, paths asked of the store each time
    # and faiss on all threads for one query (how a collection searched before either change)
    before = []
    collection.keep_paths, few = False, ann.FEW_QUERIES
    ann.FEW_QUERIES = 0
    try:
        for i in range(min(args.baseline_queries, 2 * q)):
            single = QueryFeatures(paths[i:i + 1], queries.shas[i:i + 1], allh[i:i + 1], allv[i:i + 1], [])
            t0 = time.perf_counter()
            collection.match(single, top=10)
            before.append(time.perf_counter() - t0)
    finally:
        collection.keep_paths, ann.FEW_QUERIES = True, few
    t0 = time.perf_counter()
    batch = collection.match(queries, top=10)
    batch_s = time.perf_counter() - t0
    assert [r["path"] for r in batch] == [r["path"] for r in results]
    found = sum(any(m["sha256"] == f"{src[i]:064x}" for m in results[i]["matches"]) for i in range(q))
    false = sum(bool(results[q + i]["matches"]) for i in range(q))
    one_ms = np.array(one) * 1000
    label = _size_label(n)
    print(f"single-query latency over {2 * q} queries: median {np.median(one_ms):.1f} ms, "
          f"p90 {np.percentile(one_ms, 90):.1f} ms, max {one_ms.max():.1f} ms")
    if before:
        print(f"baseline, same run (paths asked of the store each query, faiss on all threads): median "
              f"{np.median(before) * 1000:.1f} ms over {len(before)} queries")
    print(f"batch of {2 * q}: {batch_s:.2f}s = {batch_s * 1000 / (2 * q):.1f} ms per query")
    print(f"edited copies that found their original: {found}/{q}; outsiders with any match: {false}/{q}")
    print(f"neighbours: {collection.method} (faiss {'installed' if ann.faiss_available() else 'missing'})")
    print(f"search_latency_{label}: median_ms={np.median(one_ms):.1f} batch_ms_per_query={batch_s * 1000 / (2 * q):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
