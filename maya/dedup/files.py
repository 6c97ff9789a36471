"""Step 1 of dedup: the files under the roots, identified by content (sha256), incrementally.

A file whose path, size and mtime match a stored row keeps its stored sha256 (it is not read again);
the others are read and hashed in batches by a runner (``submit``: threads here, a Prefect task in the
flow), and each batch's rows are written in one transaction by this process. :func:`file_errors` joins
the problems of every step into one list per path for the report.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Sequence

from maya.io import ingest
from maya.progress import Progress

if TYPE_CHECKING:
    from maya.features import FeatureOutcome


def _done_future(value) -> Future:
    f: Future = Future()
    f.set_result(value)
    return f


@dataclass
class Identified:
    """Files identified by content, in walk order, and the paths that could not be used."""

    files: list[ingest.IngestedFile] = field(default_factory=list)
    problems: list[ingest.FileProblem] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)  # files_found, files_read, files_reused


def identify_files(
    con,
    roots: Sequence[str],
    *,
    follow_symlinks: bool = False,
    include_hidden: bool = False,
    exclude: Sequence[str] = (),
    submit: Callable[[list[str]], Future] | None = None,
    batch_size: int = ingest.DEFAULT_HASH_BATCH,
    in_flight: int = 2,
    progress: bool = False,
    selection=None,
) -> Identified:
    """Walk ``roots``, reuse the stored sha256 of unchanged files, read and hash the others.

    ``submit(paths)`` returns a future of ``ingest.sha256_files(paths)`` (a Prefect task in the flow);
    default: computed here. ``in_flight`` batches are submitted ahead; each batch's rows are written
    in one transaction by this process, so an interrupted run keeps what it finished.
    """
    walk = ingest.walk_images(roots, follow_symlinks=follow_symlinks, include_hidden=include_hidden, exclude=exclude,
                              selection=selection)
    reused, to_read = ingest.plan_ingest(con, walk.files)
    submit = submit or (lambda paths: _done_future(ingest.sha256_files(paths)))
    by_path: dict[str, ingest.IngestedFile] = {f.path: f for f in reused}
    problems = list(walk.problems)
    bar = Progress(len(to_read), "reading files", progress)

    def finish(batch, future):
        results = future.result()
        ingest.save_identified(con, batch, results)
        for f, (sha, prob) in zip(batch, results):
            if sha is not None:
                by_path[f.path] = ingest.IngestedFile(f.path, sha, f.size_bytes, f.mtime, False)
            else:
                problems.append(prob)
        bar.update(len(batch))

    pending: deque = deque()
    for start in range(0, len(to_read), batch_size):
        batch = to_read[start:start + batch_size]
        pending.append((batch, submit([f.path for f in batch])))
        if len(pending) >= max(1, in_flight):
            finish(*pending.popleft())
    while pending:
        finish(*pending.popleft())
    bar.close()
    files = [by_path[f.path] for f in walk.files if f.path in by_path]
    counts = {"files_found": len(walk.files) + len(walk.problems), "files_read": len(to_read),
              "files_reused": len(reused)}
    return Identified(files, problems, dict(walk.skipped), counts)


def file_errors(identified: Identified, outcome: "FeatureOutcome") -> list[ingest.FileProblem]:
    """One problem per path that could not be used: walk and read problems, then decode problems
    expanded to every path holding that content. Sorted by path."""
    out = list(identified.problems)
    for f in identified.files:
        p = outcome.problems.get(f.sha256)
        if p is not None:
            out.append(ingest.FileProblem(f.path, p[0], p[1]))
    unique = {p.path: p for p in reversed(out)}  # overlapping roots can meet a bad path twice: once
    return sorted(unique.values(), key=lambda p: p.path)
