"""Acting on duplicate groups: dry run by default, --move-to / --link with --yes, and undo."""

import hashlib
import os
from pathlib import Path

import pytest

from maya.dedup import actions
from maya.io.walk import MOVED_ASIDE_MARKER
from maya.cli.dedup import main
from maya.dedup.pipeline import find_duplicates
from tests.dedup_corpus import build_dedup_corpus


@pytest.fixture
def corpus(tmp_path):
    return build_dedup_corpus(tmp_path / "photos", originals=("astronaut", "coffee", "rocket"),
                              unrelated=("brick", "grass"), edits_per_original=2)


def _tree(root: Path) -> dict[str, str]:
    """relative path -> sha256 of every regular file under root (links resolved)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_dry_run_touches_nothing(corpus, tmp_path, capsys):
    before = _tree(corpus.root)
    rc = main([str(corpus.root), "--mode", "phash", "--data-dir", str(tmp_path / "d"),
               "--move-to", str(tmp_path / "dups")])
    assert rc == 0
    out = capsys.readouterr().out
    report = find_duplicates(corpus.root, mode="phash")
    n = sum(len(g["members"]) - 1 for g in report["groups"])
    assert f"dry run: would move {n} files" in out and "nothing was changed" in out
    import re  # the plan: one line per group, "  group K: keep X; move M (size): a, b"

    assert sum(int(m) for m in re.findall(r"^  group \d+: keep .*; move (\d+) \(", out, re.M)) == n
    assert _tree(corpus.root) == before and not (tmp_path / "dups").exists()


def test_move_to_with_yes_moves_exactly_the_non_kept_members_and_undo_restores_them(corpus, tmp_path, capsys):
    before = _tree(corpus.root)
    report = find_duplicates(corpus.root, mode="phash")
    kept = {g["keep"] for g in report["groups"]}
    moved = {m["path"] for g in report["groups"] for m in g["members"]} - kept
    dest = tmp_path / "dups"
    rc = main([str(corpus.root), "--mode", "phash", "--data-dir", str(tmp_path / "d"), "--move-to", str(dest),
               "--yes"])
    assert rc == 0
    out = capsys.readouterr().out
    assert f"moved {len(moved)} of {len(moved)} files; undo with: maya dedup --undo " in out
    manifest = out.split("maya dedup --undo ")[1].split()[0]
    assert Path(manifest).parent == dest
    for p in moved:
        assert not os.path.exists(p)
        assert (dest / Path(p).relative_to("/")).is_file()  # the absolute path mirrored under DEST
    for p in kept:
        assert os.path.exists(p)
    left = {str(corpus.root / k) for k in _tree(corpus.root)}
    assert left == set(map(str, (corpus.root / k for k in before))) - moved
    # a second dedup finds no duplicates any more (the kept files are all different)
    assert find_duplicates(corpus.root, mode="phash")["groups"] == []

    assert main(["--undo", manifest]) == 0
    assert f"restored {len(moved)} of {len(moved)} files" in capsys.readouterr().out
    assert _tree(corpus.root) == before
    assert not any(p.is_file() for p in dest.rglob("*") if p.name not in (Path(manifest).name, MOVED_ASIDE_MARKER))


def test_link_replaces_members_by_links_and_undo_restores_the_originals(corpus, tmp_path):
    before = _tree(corpus.root)
    report = find_duplicates(corpus.root, mode="phash")
    backup = tmp_path / "originals-backup"
    plan = actions.plan_actions(report, link=True, move_to=str(backup))
    manifest = actions.default_manifest_path(str(backup))
    result = actions.apply_actions(plan, manifest)
    assert result.done == len(plan) > 0 and not result.skipped
    for a in plan:
        assert os.path.samefile(a.path, a.keep) and a.link_type == "hard"
        assert hashlib.sha256(Path(a.backup).read_bytes()).hexdigest() == a.sha256
    undone = actions.undo(manifest)
    assert undone.done == len(plan)
    assert _tree(corpus.root) == before
    for a in plan:
        assert not os.path.samefile(a.path, a.keep)


def test_unsafe_actions_are_skipped(corpus, tmp_path):
    report = find_duplicates(corpus.root, mode="phash")
    plan = actions.plan_actions(report, move_to=str(tmp_path / "dups"))
    changed, blocked, keep_gone = plan[0], plan[1], next(a for a in plan[2:] if a.keep not in (plan[0].keep,
                                                                                               plan[1].keep))
    Path(changed.path).write_bytes(Path(changed.path).read_bytes() + b"edited since the scan")
    Path(blocked.backup).parent.mkdir(parents=True)
    Path(blocked.backup).write_bytes(b"already here")
    os.rename(keep_gone.keep, keep_gone.keep + ".away")
    manifest = actions.default_manifest_path(str(tmp_path / "dups"))
    result = actions.apply_actions(plan, manifest)
    why = {a.path: a.status for a in result.skipped}
    assert why[changed.path] == "skipped: its content changed since the scan"
    assert why[blocked.path].startswith("skipped: ") and "exists (never overwritten)" in why[blocked.path]
    assert why[keep_gone.path] == "skipped: the kept file of its group is gone"
    assert os.path.exists(changed.path) and os.path.exists(blocked.path) and os.path.exists(keep_gone.path)
    assert Path(blocked.backup).read_bytes() == b"already here"
    assert result.done == len(plan) - len(result.skipped) > 0
    # undo restores only what was done, and leaves the rest alone
    undone = actions.undo(manifest)
    assert undone.done == result.done
    assert Path(blocked.backup).read_bytes() == b"already here"


def test_bad_undo_manifest_is_a_usage_error(tmp_path, capsys):
    (tmp_path / "m.json").write_text('{"not": "a manifest"}')
    assert main(["--undo", str(tmp_path / "m.json")]) == 2
    assert capsys.readouterr().err.strip() == f"maya: error: {tmp_path / 'm.json'} is not a maya undo manifest; nothing was moved"
    assert main(["--undo", str(tmp_path / "missing.json")]) == 2


def test_a_move_to_folder_inside_the_searched_folder_is_not_searched_again(corpus, tmp_path, capsys):
    dest = corpus.root / "duplicates"
    args = [str(corpus.root), "--mode", "phash", "--data-dir", str(corpus.root / "maya-data"), "--move-to", str(dest)]
    assert main(args + ["--yes"]) == 0
    assert "moved " in capsys.readouterr().out
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "groups: 0," in out and "nothing to move" in out
    assert "2 folders left out (the data folder, --move-to, earlier --move-to folders)" in out
