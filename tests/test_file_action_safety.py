"""Issue 14, reproduced as written: the dedup file actions and a few inputs under attack.

Each test is one numbered case of the issue, on real files, a real DuckDB and the real command line
(``maya dedup`` / ``maya sql`` / ``maya pairs import``); where permissions matter a check runs as the
user ``nobody`` in a subprocess (skipped when the tests do not run as root).
"""

from __future__ import annotations

import csv
import io
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from maya.cli import main as maya
from maya.dedup import actions
from maya.io.walk import MOVED_ASIDE_MARKER

NOBODY = 65534


def _png(seed: int, side: int = 64, fmt: str = "PNG") -> bytes:
    rng = np.random.default_rng(seed)
    im = Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8))
    buf = io.BytesIO()
    im.save(buf, fmt)
    return buf.getvalue()


def _photos(root: Path, n: int = 2, copies: int = 1) -> dict[str, list[Path]]:
    """``n`` distinct images, each with ``copies`` byte-identical copies in ``root/copies``."""
    (root / "copies").mkdir(parents=True, exist_ok=True)
    out = {}
    for k in range(n):
        data = _png(k)
        orig = root / f"img{k}.png"
        orig.write_bytes(data)
        out[orig.name] = [orig]
        for c in range(copies):
            p = root / "copies" / f"img{k}-copy{c}.png"
            p.write_bytes(data)
            out[orig.name].append(p)
    return out


def _dedup(*args: str) -> int:
    return maya(["dedup", "--mode", "phash", *args])


def _manifest_from(out: str) -> str:
    return out.split("maya dedup --undo ")[1].split()[0]


def _as_nobody(code: str) -> subprocess.CompletedProcess:
    """Run Python ``code`` as the user nobody (the caller skips unless root)."""
    prog = f"import os\nos.setgroups([])\nos.setgid({NOBODY})\nos.setuid({NOBODY})\n{code}"
    return subprocess.run([sys.executable, "-c", prog], capture_output=True, text=True, timeout=60)


needs_root = pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                                reason="a non-root reader needs root to switch users")


# ---------------------------------------------------------------------------------------------- case 1


@pytest.mark.parametrize("how", ["move", "link"])
def test_undo_from_another_folder_puts_every_file_back_where_it_was(tmp_path, monkeypatch, capsys, how):
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    elsewhere.mkdir()
    photos = _photos(work / "photos")
    copies = [p for ps in photos.values() for p in ps[1:]]
    before = {p: p.read_bytes() for p in copies}
    monkeypatch.chdir(work)
    dups = tmp_path / "dups"
    extra = ["--link"] if how == "link" else []
    assert _dedup("photos", "--data-dir", str(tmp_path / "d"), "--move-to", str(dups), *extra, "--yes") == 0
    manifest = _manifest_from(capsys.readouterr().out)
    data = json.loads(Path(manifest).read_text())
    assert all(os.path.isabs(a["path"]) and os.path.isabs(a["keep"]) for a in data["actions"])
    monkeypatch.chdir(elsewhere)
    assert _dedup("--undo", manifest) == 0
    out = capsys.readouterr().out
    assert f"restored {len(copies)} of {len(copies)} files" in out
    for p, b in before.items():
        assert p.is_file() and not p.is_symlink() and p.read_bytes() == b
        assert os.stat(p).st_nlink == 1  # the link is gone, the original bytes are back
    assert list(elsewhere.iterdir()) == []


# ---------------------------------------------------------------------------------------------- case 2


def _applied(tmp_path) -> tuple[str, list[Path], Path]:
    photos = _photos(tmp_path / "photos")
    dups = tmp_path / "dups"
    from maya.dedup.pipeline import find_duplicates

    report = find_duplicates(str(tmp_path / "photos"), mode="phash")
    plan = actions.plan_actions(report, move_to=str(dups))
    manifest = actions.default_manifest_path(str(dups))
    assert actions.apply_actions(plan, manifest).done == len(plan) == 2
    return manifest, [p for ps in photos.values() for p in ps[1:]], dups


def _rewrite(manifest: str, edit, *, fix_checksum: bool) -> None:
    data = json.loads(Path(manifest).read_text())
    edit(data)
    if fix_checksum:  # a forger who knows the format recomputes the checksum
        data["checksum"] = actions._checksum(data)
    Path(manifest).write_text(json.dumps(data))


def test_an_edited_manifest_is_refused_and_nothing_moves(tmp_path, capsys):
    manifest, copies, dups = _applied(tmp_path)
    _rewrite(manifest, lambda d: d["actions"][0].update(path=str(tmp_path / "x.png")), fix_checksum=False)
    assert _dedup("--undo", manifest) == 2
    assert "checksum does not match" in capsys.readouterr().err
    assert not any(p.exists() for p in copies) and not (tmp_path / "x.png").exists()


def test_forged_manifests_with_a_valid_checksum_are_refused_and_nothing_moves(tmp_path, capsys):
    manifest, copies, dups = _applied(tmp_path)
    victim_dir = tmp_path / "etc"
    victim_dir.mkdir()
    victim = victim_dir / "hostname"
    victim.write_text("host\n")
    import hashlib

    sha = hashlib.sha256(victim.read_bytes()).hexdigest()
    forgeries = {
        "a backup outside the folder": lambda d: d["actions"][0].update(backup=str(victim), sha256=sha, size_bytes=5),
        "a path with ..": lambda d: d["actions"][0].update(path=str(tmp_path / "photos" / ".." / "etc" / "x.png")),
        "a relative path": lambda d: d["actions"][0].update(path="photos/x.png"),
        "another folder": lambda d: d.update(folder=str(victim_dir)),
        "a created folder outside": lambda d: d["created_folders"].append(str(victim_dir)),
    }
    original = Path(manifest).read_text()
    for what, edit in forgeries.items():
        Path(manifest).write_text(original)
        _rewrite(manifest, edit, fix_checksum=True)
        assert _dedup("--undo", manifest) == 2, what
        err = capsys.readouterr().err
        assert "refused" in err and "nothing was moved" in err, (what, err)
        assert victim.read_text() == "host\n" and victim_dir.is_dir()
        assert not any(p.exists() for p in copies), what
    # a backup whose bytes changed, and an action that was not done, are listed and left alone
    Path(manifest).write_text(original)
    backups = [Path(a["backup"]) for a in json.loads(original)["actions"]]
    size = backups[0].stat().st_size
    backups[0].write_bytes(b"x" * size)  # same size, other bytes
    _rewrite(manifest, lambda d: d["actions"][1].update(status="skipped: by hand"), fix_checksum=True)
    assert _dedup("--undo", manifest) == 0
    out = capsys.readouterr().out
    assert "restored 0 of 2 files" in out and "sha256 is not the one recorded" in out and "did not do it" in out
    assert backups[0].read_bytes() == b"x" * size and backups[1].is_file()
    assert not any(p.exists() for p in copies)


def test_a_manifest_others_may_write_is_refused(tmp_path, capsys):
    manifest, copies, _ = _applied(tmp_path)
    os.chmod(manifest, 0o666)
    assert _dedup("--undo", manifest) == 2
    assert "writable by others" in capsys.readouterr().err
    assert not any(p.exists() for p in copies)


def test_undo_removes_the_folders_it_made_and_marks_the_manifest_undone(tmp_path, capsys):
    manifest, copies, dups = _applied(tmp_path)
    assert _dedup("--undo", manifest) == 0
    out = capsys.readouterr().out
    assert "restored 2 of 2 files" in out and "marked undone" in out
    assert all(p.is_file() for p in copies)
    assert sorted(p.name for p in dups.iterdir()) == sorted([Path(manifest).name, MOVED_ASIDE_MARKER])
    assert json.loads(Path(manifest).read_text())["state"] == "undone"
    assert _dedup("--undo", manifest) == 2
    assert "undone already" in capsys.readouterr().err


def test_an_interrupted_run_is_still_undone(tmp_path, capsys):
    manifest, copies, dups = _applied(tmp_path)
    # as if killed after moving the files, before the final manifest: state 'applying', statuses 'planned'
    _rewrite(manifest, lambda d: [d.update(state="applying"), *[a.update(status="planned") for a in d["actions"]]],
             fix_checksum=True)
    assert _dedup("--undo", manifest) == 0
    assert "restored 2 of 2 files" in capsys.readouterr().out
    assert all(p.is_file() for p in copies)


# ---------------------------------------------------------------------------------------------- case 3


def test_a_symlink_planted_inside_move_to_redirects_nothing(tmp_path, capsys):
    _photos(tmp_path / "photos")
    dups, outside = tmp_path / "dups", tmp_path / "outside"
    dups.mkdir()
    outside.mkdir()
    first = str(tmp_path).lstrip("/").split("/")[0]
    os.symlink(outside, dups / first)  # dups/tmp -> outside: a mirrored path would go through it
    assert _dedup(str(tmp_path / "photos"), "--data-dir", str(tmp_path / "d"), "--move-to", str(dups), "--yes") == 0
    out = capsys.readouterr().out
    assert "moved 0 of 2 files" in out and "symbolic link or not a folder" in out
    assert list(outside.iterdir()) == []
    assert len(list((tmp_path / "photos" / "copies").iterdir())) == 2


def test_a_dangling_symlink_move_to_is_a_clear_error(tmp_path, capsys):
    _photos(tmp_path / "photos")
    os.symlink(tmp_path / "nowhere", tmp_path / "dups")
    assert _dedup(str(tmp_path / "photos"), "--data-dir", str(tmp_path / "d"), "--move-to",
                  str(tmp_path / "dups"), "--yes") == 2
    err = capsys.readouterr().err
    assert "is a symbolic link to" in err and "does not exist" in err and "Errno" not in err


# ---------------------------------------------------------------------------------------------- case 4


@needs_root
@pytest.mark.parametrize("how", ["move-to", "link"])
def test_moving_never_widens_access_to_a_private_photo(tmp_path_factory, capsys, how):
    import shutil
    import tempfile

    tmp_path = Path(tempfile.mkdtemp(prefix="maya-perm-", dir="/tmp"))  # pytest's own folders are 0700
    try:
        _private_photo_stays_private(tmp_path, capsys, how)
    finally:
        shutil.rmtree(tmp_path)


def _private_photo_stays_private(tmp_path, capsys, how):
    os.chmod(tmp_path, 0o755)
    public = tmp_path / "public.txt"
    public.write_text("anyone may read this")
    os.chmod(public, 0o644)
    assert _as_nobody(f"open({str(public)!r}, 'rb').read()").returncode == 0  # the reader can read at all
    photos = tmp_path / "photos"
    _photos(photos)
    os.chmod(photos, 0o755)
    private = photos / "copies"
    for p in private.iterdir():
        os.chmod(p, 0o644)  # readable by anyone who can reach it: the folder is what keeps it private
    os.chmod(private, 0o700)
    data_dir = tmp_path / "d"
    if how == "link":
        args = ["--link", "--data-dir", str(data_dir)]
        dest = data_dir / "dedup-originals"
    else:
        dest = tmp_path / "dups"
        args = ["--move-to", str(dest), "--data-dir", str(data_dir)]
    assert _dedup(str(photos), *args, "--yes") == 0
    assert "of 2 files" in capsys.readouterr().out
    mirrored = Path(actions.mirrored_path(str(dest.resolve()), str(private)))
    assert stat.S_IMODE(os.stat(mirrored).st_mode) & 0o077 == 0
    moved = sorted(mirrored.iterdir())
    assert len(moved) == 2
    r = _as_nobody(f"open({str(moved[0])!r}, 'rb').read()")
    assert r.returncode != 0 and "PermissionError" in r.stderr


# ---------------------------------------------------------------------------------------------- case 5


def test_pairs_import_reports_fifo_and_dev_zero_rows_in_bounded_time_and_memory(tmp_path):
    photos = _photos(tmp_path / "img", n=2)
    fifo = tmp_path / "img" / "pipe.png"
    os.mkfifo(fifo)
    newline_name = tmp_path / "img" / "two\nlines.png"
    newline_name.write_bytes(photos["img0.png"][0].read_bytes())
    rows = [["a", "b", "label"], ["img/img0.png", "img/img1.png", "0"], ["img/img0.png", "/dev/zero", "1"],
            ["img/img0.png", "img/pipe.png", "1"], ["img/img1.png", "img/two\nlines.png", "0"]]
    with open(tmp_path / "pairs.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    code = f"""
import resource, json
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
from maya.pairs.importing import import_pairs
ps = import_pairs({str(tmp_path / 'pairs.csv')!r})
print(json.dumps({{"pairs": len(ps.pairs), "errors": ps.errors,
                  "files": sorted(f.path for f in ps.files if f.status == "ok")}}))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["pairs"] == 2
    assert any(":3:" in e and "/dev/zero" in e and "not a regular file" in e for e in got["errors"])
    assert any(":4:" in e and "pipe.png" in e and "not a regular file" in e for e in got["errors"])
    assert str(newline_name) in got["files"]  # the quoted newline is part of the name


# ---------------------------------------------------------------------------------------------- case 6


def test_a_literal_backslash_name_and_a_byte_name_are_two_files_on_every_run(tmp_path, capsys):
    root = tmp_path / "p"
    root.mkdir()
    literal = os.path.join(os.fsencode(root), b"a\\xff.png")
    raw = os.path.join(os.fsencode(root), b"a\xff.png")
    with open(literal, "wb") as f:
        f.write(_png(1, fmt="BMP"))
    with open(raw, "wb") as f:
        f.write(_png(2, fmt="BMP"))
    assert os.path.getsize(literal) == os.path.getsize(raw)
    os.utime(literal, (1_600_000_000, 1_600_000_000))
    os.utime(raw, (1_600_000_000, 1_600_000_000))
    for run in range(3):
        assert _dedup(str(root), "--data-dir", str(tmp_path / "d"), "--json", str(tmp_path / "r.json")) == 0, run
        report = json.loads((tmp_path / "r.json").read_text(errors="surrogateescape"))
        assert report["groups"] == [] and report["errors"] == [], run
        capsys.readouterr()
    import duckdb

    con = duckdb.connect(str(tmp_path / "d" / "maya.duckdb"), read_only=True)
    shas = con.execute("SELECT count(DISTINCT path), count(DISTINCT sha256) FROM files").fetchone()
    assert shas == (2, 2)


# ---------------------------------------------------------------------------------------------- case 7


def test_an_image_past_path_max_is_listed_and_counted(tmp_path, capsys):
    root = tmp_path / "deep"
    root.mkdir()
    fd = os.open(root, os.O_RDONLY)
    for _ in range(25):
        os.mkdir("d" * 200, dir_fd=fd)
        nfd = os.open("d" * 200, os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = nfd
    f = os.open("x.png", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
    os.write(f, _png(0))
    os.close(f)
    os.close(fd)
    assert _dedup(str(root), "--data-dir", str(tmp_path / "d")) == 0
    out = capsys.readouterr().out
    assert "file name too long" in out
    assert "left out by the walk: 1 paths longer than the system allows" in out


# ---------------------------------------------------------------------------------------------- case 8


def test_link_skips_a_group_whose_kept_file_was_swapped(tmp_path):
    photos = _photos(tmp_path / "photos")
    from maya.dedup.pipeline import find_duplicates

    report = find_duplicates(str(tmp_path / "photos"), mode="phash")
    plan = actions.plan_actions(report, link=True, move_to=str(tmp_path / "dups"))
    swapped = plan[0]
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0\n")
    os.unlink(swapped.keep)
    os.symlink(secret, swapped.keep)
    result = actions.apply_actions(plan, actions.default_manifest_path(str(tmp_path / "dups")))
    assert result.done == 1
    assert "changed since the scan" in swapped.status and "left alone" in swapped.status
    member = Path(swapped.path)
    assert member.is_file() and not member.is_symlink() and member.read_bytes() == _png(
        int(member.name[3]))  # img<k>-copy0.png still holds its own bytes
    assert secret.read_text() == "root:x:0:0\n"
    del photos


# ---------------------------------------------------------------------------------------------- case 9


def test_control_characters_in_names_never_reach_the_terminal(tmp_path, capfd):
    root = tmp_path / "p"
    root.mkdir()
    data = _png(3)
    names = ["\x1b[2Jclear.png", "bell\x07.png", "cr\rgroups: 99.png", "lf\nfiles: 0 found.png", "\x1b]0;title\x07.png"]
    for n in names:
        (root / n).write_bytes(data)
    (root / "broken\x1b[31m.png").write_bytes(b"not an image")
    assert _dedup(str(root), "--data-dir", str(tmp_path / "d"), "--move-to", str(tmp_path / "dups")) == 0
    out, err = capfd.readouterr()
    for text in (out, err):
        assert "\x1b" not in text and "\x07" not in text and "\r" not in text
    assert "\\x1b[2Jclear.png" in out and "lf\\nfiles: 0 found.png" in out
    assert not any(line.startswith(("files: 0 found", "groups: 99")) for line in out.splitlines())


# ---------------------------------------------------------------------------------------------- case 10


def test_csv_cells_never_start_a_formula(tmp_path, capsys):
    root = tmp_path / "p"
    root.mkdir()
    data = _png(4)
    for n in ("=HYPERLINK(1).png", "+1.png", "-2.png", "@SUM(1).png", "\tx.png"):
        (root / n).write_bytes(data)
    os.chdir(root)
    try:
        assert _dedup("--data-dir", str(tmp_path / "d"), "--csv", str(tmp_path / "g.csv"), "--",
                      *sorted(os.listdir("."))) == 0  # maya dedup --csv g.csv -- *
    finally:
        os.chdir(tmp_path)
    with open(tmp_path / "g.csv", newline="") as f:
        cells = [c for row in csv.reader(f) for c in row]
    assert sum(1 for c in cells if c.startswith("'")) == 5
    assert not any(c.startswith(("=", "+", "-", "@", "\t", "\r")) for c in cells)


# ---------------------------------------------------------------------------------------------- case 11


def test_report_markdown_escapes_what_it_inlines():
    from maya.report.study import _md_fence, md_text

    name = "x](javascript:alert(1)) <img src=x onerror=1> *bold* | cell\n# heading"
    text = md_text(name)
    assert "\n" not in text and "<" not in text.replace("\\<", "") and "](" not in text.replace("\\](", "")
    assert "\\|" in text and "\\*bold\\*" in text
    assert _md_fence('{"kind": "```"}') == "````"


def test_maya_sql_reads_only_the_store_unless_allow_files(tmp_path, capsys):
    _photos(tmp_path / "photos", n=1)
    assert _dedup(str(tmp_path / "photos"), "--data-dir", str(tmp_path / "d")) == 0
    capsys.readouterr()
    target = tmp_path / "out.csv"
    for query in (f"COPY files TO '{target}'", "SELECT * FROM read_text('/etc/hostname')",
                  f"ATTACH '{tmp_path / 'other.duckdb'}' AS other"):
        assert maya(["sql", "--data-dir", str(tmp_path / "d"), query]) == 2, query
        assert "--allow-files" in capsys.readouterr().err
    assert not target.exists() and not (tmp_path / "other.duckdb").exists()
    assert maya(["sql", "--data-dir", str(tmp_path / "d"), "--allow-files", f"COPY files TO '{target}'"]) == 0
    assert target.exists()
    with pytest.raises(SystemExit):
        maya(["sql", "--help"])
    assert "--allow-files" in capsys.readouterr().out


def test_an_earlier_move_to_folder_inside_the_tree_is_not_scanned_again(tmp_path, capsys):
    root = tmp_path / "photos"
    _photos(root)
    common = [str(root), "--data-dir", str(tmp_path / "d")]
    assert _dedup(*common, "--move-to", str(root / "first"), "--yes") == 0
    assert "moved 2 of 2" in capsys.readouterr().out
    assert (root / "first" / MOVED_ASIDE_MARKER).is_file()
    assert _dedup(*common, "--move-to", str(root / "second")) == 0
    out = capsys.readouterr().out
    assert "groups: 0," in out and "earlier --move-to folders" in out


def test_an_older_store_drops_its_ambiguous_path_rows_once_and_keeps_working(tmp_path):
    from maya import store

    db = tmp_path / "maya.duckdb"
    con = store.connect(db)
    con.execute("DROP TABLE path_format")  # as a store written before paths were lossless
    con.execute("INSERT INTO files (path, sha256, size_bytes, mtime, status) VALUES "
                "('/p/a\\xff.png', 'old', 1, 1.0, 'ok'), ('/p/plain.png', 'kept', 1, 1.0, 'ok')")
    con.close()
    con = store.connect(db)
    assert con.execute("SELECT path FROM files ORDER BY path").fetchall() == [("/p/plain.png",)]
    con.execute("INSERT INTO files (path, sha256, size_bytes, mtime, status) VALUES "
                "('/p/a\\\\xff.png', 'new', 1, 1.0, 'ok')")
    con.close()
    con = store.connect(db)  # once only: rows written since are kept
    assert con.execute("SELECT count(*) FROM files").fetchone() == (2,)
    con.close()


def test_a_run_killed_between_link_and_unlink_is_undone_without_a_second_copy(tmp_path, capsys):
    manifest, copies, dups = _applied(tmp_path)
    data = json.loads(Path(manifest).read_text())
    first = data["actions"][0]
    os.link(first["backup"], first["path"])  # the file was linked into the folder, not yet unlinked
    _rewrite(manifest, lambda d: [d.update(state="applying"), *[a.update(status="planned") for a in d["actions"]]],
             fix_checksum=True)
    assert _dedup("--undo", manifest) == 0
    assert "restored 2 of 2 files" in capsys.readouterr().out
    assert all(p.is_file() and os.stat(p).st_nlink == 1 for p in copies)
    assert not os.path.lexists(first["backup"])
