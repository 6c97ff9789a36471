"""``maya dedup``: the command line of the dedup flow (parser, command, summary, actions).

Hooked into ``maya.cli.app`` with ``add_dedup_parser(subparsers, [common, model])``; also runs on its own
as ``python -m maya.cli.dedup DIR ...`` (same flags). Building the parser imports nothing heavy.

Where the run happens (``--engine``): ``auto`` (default) runs the Prefect flow ``dedup`` when a Prefect
server is configured (``PREFECT_API_URL``) or ``--dask-address`` is given, so the run shows in the
Prefect UI at no start-up cost; otherwise the same steps run in this process without Prefect (a
temporary Prefect server would add seconds to every call). ``prefect`` / ``local`` force either.
"""

from __future__ import annotations

import argparse
import os
import sys

from maya.cli.exit_status import run_command
from maya.cli.options import common_parser, model_parser, settings_from_args as _settings


def add_dedup_parser(subparsers, common_parents) -> argparse.ArgumentParser:
    """Add the ``dedup`` sub-command to ``subparsers`` (flags listed in the README); returns its parser."""
    from maya import dedup as lib  # light: numpy and the models are imported when a run starts

    p = subparsers.add_parser(
        "dedup", parents=list(common_parents),
        help="find groups of near-duplicate images in folders",
        description="Find groups of near-duplicate images under DIR... (recursive). Nothing is moved or "
                    "changed unless --move-to or --link is given with --yes; without --yes they print "
                    "what they would do.",
    )
    p.add_argument("dirs", nargs="*", metavar="DIR", help="folders (or files) to search")
    p.add_argument("--mode", choices=lib.MODES, default="hybrid",
                   help="hybrid (default; the study's cascade rule): close pHash pairs match, a pHash "
                        "shortlist is verified by the embedding model, plus strong model neighbours; clip: the "
                        "embedding model only (CLIP or efficientnet, whichever --model is); phash: pHash only, "
                        "no model loaded")
    p.add_argument("--sensitivity", choices=("strict", "normal", "loose"), default="normal",
                   help="one knob for all thresholds: strict finds fewer, surer groups, loose more; scales the "
                        "thresholds below (a threshold flag given explicitly wins)")
    p.add_argument("--quiet", action="store_true",
                   help="no progress and no summary: only problems (stderr), the files --json/--csv/--html "
                        "write, and what --move-to/--link do")
    out = p.add_argument_group("outputs")
    out.add_argument("--json", dest="json_path", metavar="PATH", help="write the groups and errors as JSON ('-': stdout; default: not written)")
    out.add_argument("--csv", dest="csv_path", metavar="PATH", help="write one CSV row per group member (default: not written)")
    out.add_argument("--html", dest="html_path", metavar="PATH", help="write a self-contained HTML gallery (default: not written)")
    act = p.add_argument_group("acting on the groups (dry run unless --yes)")
    act.add_argument("--move-to", metavar="DIR", help="move every member that is not kept under DIR, path mirrored (default: nothing is moved)")
    act.add_argument("--link", action="store_true",
                     help="replace every member that is not kept by a link to the kept file (originals go to "
                          "--move-to DIR, or to DATA_DIR/dedup-originals)")
    act.add_argument("--yes", action="store_true", help="really do it (and write an undo manifest)")
    act.add_argument("--include-chained", action="store_true",
                     help="also act on chained groups and groups of more than 50 files (held back by default)")
    act.add_argument("--undo", metavar="MANIFEST", help="put back the files of an earlier --yes run, then stop (default: no undo)")
    th = p.add_argument_group("thresholds (pHash distances in bits, similarities as cosine)")
    th.add_argument("--phash-accept", type=int, default=None, metavar="BITS",
                    help=f"pHash distance accepted without the model (default {lib.PHASH_ACCEPT}, scaled by "
                         "--sensitivity)")
    th.add_argument("--phash-radius", type=int, default=None, metavar="BITS",
                    help="hybrid: pHash candidates up to this distance are verified by the model (default "
                         f"{lib.PHASH_RADIUS}, scaled by --sensitivity)")
    th.add_argument("--clip-verify", type=float, default=None, metavar="SIM",
                    help="hybrid: similarity a pHash candidate needs (default: the cascade threshold the "
                         f"evaluate study chose for this model in this store, else {lib.CLIP_VERIFY} for CLIP)")
    th.add_argument("--clip-strict", type=float, default=None, metavar="SIM",
                    help="similarity at which model neighbours match on their own (default: the study's "
                         f"val threshold for precision >= 0.99, else {lib.CLIP_STRICT} for CLIP)")
    th.add_argument("--clip-k", type=int, default=lib.CLIP_NEIGHBOURS, metavar="K",
                    help="model neighbours looked at per image (default %(default)s)")
    th.add_argument("--calibration", metavar="DATASET|RUN",
                    help="take the similarity thresholds from this evaluate run (id) or dataset's latest evaluate "
                         "run of the model, at pair precision >= 0.999 on its val split (default: the model's "
                         "built-in thresholds, measured on collection benchmarks)")
    th.add_argument("--clip-veto", type=float, default=None, metavar="SIM",
                    help="a pHash accept (d <= phash-accept) whose similarity is below this is no match: the model "
                         "vetoes it (default: the model's built-in value, or from --calibration)")
    th.add_argument("--clip-local", type=float, nargs=2, default=None, metavar=("FLOOR", "MARGIN"),
                    help="the local clause: a pair matches at similarity >= FLOOR that is MARGIN above both images' "
                         "similarity to their clip-k-th neighbour (default: the model's built-in values, else off; "
                         "nan nan: off)")
    th.add_argument("--clip-majority", type=float, nargs=2, default=None, metavar=("SIM", "MARGIN"),
                    help="star grouping: a file left out joins the group whose files it resembles, at similarity >= "
                         "SIM with most of them and a mean MARGIN above any other group's (default: the model's "
                         "built-in values, else off; nan nan: off)")
    th.add_argument("--grid", type=float, nargs=2, default=None, metavar=("FLOOR", "AGREE"),
                    help="the grid clause: a pair at similarity >= FLOOR matches when at least AGREE (0..1) of the "
                         "two pictures' structured cells agree pixel for pixel (copies with emoji, shapes or text "
                         "laid over part of them; default: the model's built-in values, else off; nan nan: off)")
    th.add_argument("--phash-majority", action=argparse.BooleanOptionalAction, default=True,
                    help="star grouping in hybrid mode: a file left out joins the one group most of whose files are "
                         "within the pHash radius of it (copies whose embedding an edit wrecked; smooth pictures, "
                         "whose pHashes are alike, cast no vote; default: on; --no-phash-majority: off)")
    th.add_argument("--grouping", choices=lib.GROUPINGS, default="star",
                    help="star (default): every member is a direct near-duplicate of the kept file, so weak "
                         "chains cannot merge groups; components: connected components of accepted pairs")
    th.add_argument("--split-chains", action="store_true",
                    help="cut chained groups (A~B~C with A far from C) at their weakest links")
    th.add_argument("--no-views", dest="views", action="store_false",
                    help="do not compare the inner picture of screenshots, memes and bordered copies (saves "
                         "one embedding per such image; default: on)")
    from maya.views import EXTRA_VIEWS

    th.add_argument("--extra-views", action="append", default=[], choices=sorted(EXTRA_VIEWS), metavar="VIEW",
                    help="also compare this fixed view of every image (repeatable; centre: the middle 50 %% of "
                         "the area, for centre crops; costs one more decode and embedding per image; default: none)")
    kp = p.add_argument_group("which file of a group is kept")
    kp.add_argument("--keep", choices=("source", "largest", "oldest", "newest", "first-root"), default="source",
                    help="source (default): the file that looks like the original: not under a folder or name "
                         "marking a copy (backup, copies, 'x (1).jpg', ...), then an earlier root on the command "
                         "line, then most pixels; largest: most pixels; oldest / newest: by mtime; first-root: "
                         "an earlier root first")
    kp.add_argument("--prefer", action="append", default=[], metavar="GLOB",
                    help="keep a file whose path matches GLOB first, whatever --keep says (repeatable; default: none)")
    walk = p.add_argument_group("walking")
    walk.add_argument("--follow-symlinks", action="store_true", help="follow symbolic links (off by default)")
    walk.add_argument("--include-hidden", action="store_true", help="include files and folders whose name starts with '.'")
    walk.add_argument("--exclude", action="append", metavar="GLOB", default=None,
                      help="leave out files and folders whose name or path matches GLOB, e.g. '*.tmp', "
                           "'Thumbnails', '*/cache/*' (repeatable; default: none)")
    walk.add_argument("--min-size", metavar="SIZE",
                      help="leave out files smaller than SIZE: bytes, or 100KB, 2MB, 1MiB (default: no minimum)")
    walk.add_argument("--ext", action="append", metavar="EXT",
                      help="take only files with these extensions, e.g. jpg,heic (repeatable; default: every "
                           "image extension)")
    walk.add_argument("--max-pixels", type=int, metavar="N",
                      help="largest declared width x height decoded (env MAYA_MAX_PIXELS; default 178956970)")
    run = p.add_argument_group("running")
    run.add_argument("--dask-address", metavar="ADDR",
                     help="run the tasks on a Dask cluster: tcp://host:8786, or 'local' for a local one "
                          "(default: threads in this process)")
    run.add_argument("--engine", choices=("auto", "prefect", "local"), default="auto",
                     help="auto: the Prefect flow when PREFECT_API_URL or --dask-address is set, else in this "
                          "process; prefect / local: force one")
    p.set_defaults(func=cmd_dedup)
    return p


def phash_band(args) -> tuple[int, int]:
    """``(phash_accept, phash_radius)`` from parsed threshold flags (dedup's and search's): a flag left out
    takes the built-in default, and a radius left out is never below the accept distance given."""
    from maya import dedup as lib

    accept = lib.PHASH_ACCEPT if args.phash_accept is None else args.phash_accept
    radius = lib.PHASH_RADIUS if args.phash_radius is None else args.phash_radius
    return accept, max(radius, accept) if args.phash_radius is None else radius


def cmd_dedup(args) -> int:
    """Run ``maya dedup`` for parsed ``args``; returns the exit status (0 also when files were bad)."""
    try:
        return _cmd_dedup(args)
    except Exception as e:
        from maya.embedding.models import ModelLoadError

        if not isinstance(e, ModelLoadError) or args.mode == "phash":
            raise
        # the model modes need a model; say what works without one too
        raise type(e)(f"{e}; or find duplicates without a model: --mode phash") from None


def _cmd_dedup(args) -> int:
    from maya import dedup as lib

    for key in ("move_to", "json_path", "csv_path", "html_path", "undo"):  # "~/dups.html" as a shell would
        if getattr(args, key) and getattr(args, key) != "-":
            setattr(args, key, os.path.expanduser(getattr(args, key)))
    if args.undo:
        if args.dirs or args.move_to or args.link:
            raise lib.DedupUsageError("--undo takes only the manifest: no folders, --move-to or --link")
        return _undo(args.undo)
    if args.yes and not (args.move_to or args.link):
        raise lib.DedupUsageError("--yes only goes with --move-to DIR or --link")
    from maya.dedup.sensitivity import Sensitivity
    from maya.io.selection import FileSelection, parse_extensions, parse_size

    given = frozenset(k for k in ("phash_accept", "phash_radius", "clip_verify", "clip_strict")
                      if getattr(args, k) is not None)
    sensitivity = Sensitivity(args.sensitivity, given)
    accept, radius = phash_band(args)
    options = lib.DedupOptions(args.mode, accept, radius, args.clip_verify, args.clip_strict, args.clip_k,
                               args.split_chains, args.grouping, args.clip_veto, args.keep, tuple(args.prefer),
                               views=args.views, extra_views=tuple(dict.fromkeys(args.extra_views)),
                               **_local_and_vote(args)).check()
    selection = FileSelection(tuple(args.exclude or ()), parse_size(args.min_size) if args.min_size else 0,
                              parse_extensions(args.ext))
    roots = lib.check_roots(args.dirs)
    if args.max_pixels is not None and args.max_pixels < 1:
        raise lib.DedupUsageError(f"--max-pixels must be >= 1, got {args.max_pixels}")
    settings = _settings(args)
    if args.move_to:
        from maya.dedup.actions import destination_folder

        destination_folder(args.move_to)  # a file or a dangling link: a clear error before the scan
    out = sys.stderr if args.json_path == "-" else sys.stdout
    outputs = {"json_path": args.json_path, "csv_path": args.csv_path, "html_path": args.html_path}
    # files moved aside, and Maya's own folder, are never searched again
    exclude = [str(settings.data_dir)] + ([args.move_to] if args.move_to else [])

    if _use_prefect(args):
        from maya.cli.prefect_server import prefect_api, quiet_prefect

        quiet_prefect(args.verbose)
        with prefect_api():
            from maya.flows.dedup import dedup

            summary = dedup(paths=roots, data_dir=str(settings.data_dir), model=settings.model,
                            device=settings.device, precision=settings.precision, batch_size=settings.batch_size,
                            max_pixels=args.max_pixels or settings.max_pixels, follow_symlinks=args.follow_symlinks,
                            include_hidden=args.include_hidden, exclude=exclude, dask_address=args.dask_address,
                            progress=not args.quiet, selection=selection.as_dict(), sensitivity=args.sensitivity,
                            given=sorted(given), calibration=args.calibration, **_flow_options(options), **outputs)
    else:
        run = lib.run_dedup(roots, options, db_path=settings.db_path, model=settings.model, device=settings.device,
                            precision=settings.precision, batch_size=settings.batch_size,
                            max_pixels=args.max_pixels or settings.max_pixels, follow_symlinks=args.follow_symlinks,
                            include_hidden=args.include_hidden, exclude=exclude, progress=not args.quiet,
                            selection=selection, sensitivity=sensitivity,
                            calibration=args.calibration)
        written = lib.write_outputs(run.report, run.groups, progress=not args.quiet, **outputs)
        summary = {"run_id": run.run_id, "report": run.report, "counts": run.counts, "skipped": run.skipped,
                   "model_id": run.model_id, "options": run.options.as_dict(), "outputs": written}
    summary["database"] = str(settings.db_path)
    if not args.quiet:
        print_summary(summary, out=out, show_groups=not any(outputs.values()))
    else:
        for e in summary["report"]["errors"]:
            print(f"maya: {_shown(e['path'])}: {e['error']}", file=sys.stderr)
    if args.move_to or args.link:
        _act(args, summary["report"], settings, out)
    return 0


# ---------------------------------------------------------------------------------------------- helpers


def _use_prefect(args) -> bool:
    if args.engine == "prefect" or args.dask_address:
        return True
    if args.engine == "local":
        return False
    return bool(os.environ.get("PREFECT_API_URL"))


def _shown(path: str) -> str:
    """A path as printable text (control characters and bytes that are not UTF-8 escaped)."""
    from maya.io.printable import printable

    return printable(path)


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


_SKIPPED = {
    "hidden": "hidden (--include-hidden)",
    "symlink": "symbolic links (--follow-symlinks)",
    "not_an_image_name": "not named like an image",
    "same_file": "the same file reached twice",
    "broken_symlink": "broken links not named like an image",
    "same_folder": "folders reached twice",
    "excluded": "folders left out (the data folder, --move-to, earlier --move-to folders)",
    "name_too_long": "paths longer than the system allows (listed above as unreadable)",
    "excluded_glob": "files and folders matching --exclude",
    "too_small": "files under --min-size",
}


def print_summary(summary: dict, *, out=None, show_groups: bool = True, max_errors: int = 20,
                  max_groups: int = 20) -> None:
    """The run in a few lines: counts, groups, one line per unusable file (the first ``max_errors``)."""
    out = out or sys.stdout
    c = summary["counts"]
    report = summary["report"]
    opts = summary["options"]
    model = f", model {summary['model_id']}" if summary.get("model_id") else ""
    p = lambda *a: print(*a, file=out)  # noqa: E731
    mode = {"hybrid": "hybrid (pHash + embedding)", "phash": "phash (no model)",
            "clip": f"clip (embedding only: {_family(summary.get('model_id'))})"}.get(opts["mode"], opts["mode"])
    p(f"dedup run {summary['run_id']}: mode {mode}{model}")
    from maya.dedup.options import DedupOptions, describe_rule

    known = {k: v for k, v in opts.items() if k in DedupOptions.__dataclass_fields__}
    rule = report.get("rule", {}).get("text") or describe_rule(DedupOptions(**known))
    source = report.get("rule", {}).get("source")
    p(f"match rule: {rule}" + (f" (source: {source})" if source else ""))
    p(f"files: {c['files_found']:,} found, {c['files_read']:,} read, {c['files_reused']:,} unchanged (not read); "
      f"{c['images']:,} distinct contents")
    emb = ""
    if opts["mode"] != "phash":
        emb = f"; embeddings {c['embeddings_computed']:,} computed, {c['embeddings_reused']:,} reused"
    p(f"features: pHash {c['hashes_computed']:,} computed, {c['hashes_reused']:,} reused{emb}")
    groups = report["groups"]
    exact = sum(1 for g in groups if all(m["exact"] for m in g["members"]))
    p(f"groups: {len(groups):,}, of which {exact:,} hold only byte-identical copies; "
      f"{c['duplicate_files']:,} files are not the kept one of their group ({_size(c['reclaimable_bytes'])})")
    chained = [g for g in groups if g.get("chained")]
    if chained:
        p(f"chained groups: {len(chained):,} (a member is far from the kept file; --split-chains cuts them):")
        for g in chained[:5]:
            wl = g["weakest_link"]
            if wl:
                sim = "" if wl["clip_similarity"] is None else f", sim {wl['clip_similarity']:.3f}"
                p(f"  weakest link {_shown(wl['a'])} ~ {_shown(wl['b'])} (d {wl['phash_distance']}{sim})")
    if show_groups and groups:
        for k, g in enumerate(groups[:max_groups], start=1):
            p(f"  group {k}: keep {_shown(g['keep'])}")
            for m in g["members"][1:]:
                sim = "" if m["clip_similarity"] is None else f", sim {m['clip_similarity']:.3f}"
                if m.get("views") and m["views"] != "whole/whole":
                    sim += f" ({m['views']} views)"
                p(f"           {_shown(m['path'])} (d {m['phash_distance']}{sim}{', exact' if m['exact'] else ''}"
                  f"{', by ' + m['clause'] if m.get('clause') else ''})")
        if len(groups) > max_groups:
            p(f"  ... and {len(groups) - max_groups:,} more groups (--json, --csv or --html for all)")
    errors = report["errors"]
    if errors:
        p(f"{len(errors):,} {'file' if len(errors) == 1 else 'files'} could not be used:")
        for e in errors[:max_errors]:
            p(f"  {_shown(e['path'])}: {e['error']}")
        if len(errors) > max_errors:
            p(f"  ... and {len(errors) - max_errors:,} more (--json, or the table dedup_errors)")
    else:
        p("0 files could not be used")
    skipped = {k: v for k, v in summary.get("skipped", {}).items() if v}
    if skipped:
        p("left out by the walk: " + ", ".join(f"{v:,} {_SKIPPED.get(k, k)}" for k, v in sorted(skipped.items())))
    written = [_shown(v) for v in (summary.get("outputs") or {}).values() if v != "-"]
    if written:
        p("wrote " + ", ".join(written))
    if summary.get("database"):
        p(f"database: {_shown(summary['database'])}")


def _family(model_id) -> str:
    """The embedding family a user knows the model by: efficientnet or clip."""
    return "efficientnet" if str(model_id or "").startswith("efficientnet") else "clip"


def _act(args, report: dict, settings, out) -> None:
    from maya.dedup import actions
    from maya.dedup.outputs import actionable

    report, held = actionable(report, args.include_chained)
    if held:
        print(f"held back: {len(held):,} chained or large groups are not acted on (--include-chained to include "
              f"them):", file=out)
        for g, why in held[:10]:
            print(f"  keep {_shown(g['keep'])}: {why}", file=out)
    backup = os.path.join(str(settings.data_dir), "dedup-originals") if args.link and not args.move_to else None
    plan = actions.plan_actions(report, move_to=args.move_to, link=args.link, backup_dir=backup)
    if not plan:
        print("nothing to move: no group has a member besides the kept file", file=out)
        return
    total = sum(a.size_bytes or 0 for a in plan)
    verb = "replace by links" if args.link else "move"
    if not args.yes:
        for line in plan_by_group(plan):
            print(line, file=out)
        where = f" (originals to {_shown(args.move_to or backup)})" if args.link else f" into {_shown(args.move_to)}"
        groups = len({a.keep for a in plan})
        print(f"dry run: would {verb} {len(plan):,} files ({_size(total)}) of {groups:,} groups{where}; "
              f"nothing was changed; run again with --yes to do it (an undo manifest is written)", file=out)
        return
    folder = args.move_to or backup
    manifest = actions.default_manifest_path(folder)
    result = actions.apply_actions(plan, manifest)
    print(f"{'linked' if args.link else 'moved'} {result.done:,} of {len(plan):,} files; "
          f"undo with: maya dedup --undo {_shown(manifest)}", file=out)
    for a in result.skipped:
        print(f"  left alone {_shown(a.path)}: {a.status}", file=out)


def plan_by_group(plan) -> list[str]:
    """The dry run, one line per group: the kept file, then the members that would be moved or linked."""
    by_keep: dict[str, list] = {}
    for a in plan:
        by_keep.setdefault(a.keep, []).append(a)
    lines = []
    for k, (keep, members) in enumerate(by_keep.items(), start=1):
        size = _size(sum(a.size_bytes or 0 for a in members))
        names = ", ".join(_shown(a.path) for a in members)
        lines.append(f"  group {k}: keep {_shown(keep)}; {members[0].kind} {len(members)} ({size}): {names}")
    return lines


def _undo(manifest: str) -> int:
    from maya.dedup import actions

    result = actions.undo(manifest)
    print(f"restored {result.done:,} of {len(result.actions):,} files from {_shown(manifest)}")
    for a in result.skipped:
        print(f"  not restored {_shown(a.path)}: {a.status}")
    if result.folders_left:
        print(f"  {len(result.folders_left):,} folders it created still hold files and were left, e.g. "
              f"{_shown(result.folders_left[0])}")
    print(f"the manifest stays at {_shown(result.manifest)}, marked undone (delete it when done)")
    return 0


# ---------------------------------------------------------------------------------------------- standalone


def main(argv: list[str] | None = None) -> int:
    """``maya dedup ARGS`` (``argv`` without the leading ``dedup``): the same parser, errors and exit codes
    as the ``maya`` command."""
    parser = argparse.ArgumentParser(prog="maya")
    add_dedup_parser(parser.add_subparsers(dest="command", required=True), [common_parser(), model_parser()])
    return run_command(parser.parse_args(["dedup", *(sys.argv[1:] if argv is None else argv)]))


if __name__ == "__main__":
    sys.exit(main())


def _local_and_vote(args) -> dict:
    """The local clause's, the majority vote's and the grid clause's numbers given as flags (None each: the
    model's own)."""
    local = getattr(args, "clip_local", None) or (None, None)
    vote = getattr(args, "clip_majority", None) or (None, None)
    grid = getattr(args, "grid", None) or (None, None)
    return {"clip_local_floor": local[0], "clip_local_margin": local[1], "clip_majority": vote[0],
            "clip_majority_margin": vote[1], "phash_majority": getattr(args, "phash_majority", True),
            "grid_floor": grid[0], "grid_agree": grid[1]}


def _flow_options(options) -> dict:
    """The dedup flow's parameters for ``options``: every field as it is (a threshold turned off stays nan;
    ``as_dict``, the JSON form, writes that as null, which the flow would read as "resolve the default")."""
    from dataclasses import fields

    return {f.name: (list(v) if isinstance(v := getattr(options, f.name), tuple) else v) for f in fields(options)}
