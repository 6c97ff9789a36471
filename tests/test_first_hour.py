"""The first hour of a new user (issue 18): help texts, global options, --version, the config file, ``~``
in paths, the demo's next steps, HEIC photos, quiet decoding, and dedup's filters and sensitivity."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from maya.cli.app import build_parser, main

FLAG_ACTIONS = (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse._HelpAction,
                argparse._VersionAction, argparse._CountAction)


def _all_parsers(parser: argparse.ArgumentParser, name: str = "maya"):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _all_parsers(sub, f"{name} {sub_name}")


def test_every_option_of_every_command_has_help_and_says_its_default():
    missing = []
    parsers = list(_all_parsers(build_parser()))
    assert len(parsers) > 10
    for name, parser in parsers:
        if name != "maya" and not parser.description:
            missing.append(f"{name}: no description")
        formatter = parser._get_formatter()
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            label = f"{name} {'/'.join(action.option_strings) or action.dest}"
            if not action.help:
                missing.append(f"{label}: no help")
                continue
            if (action.option_strings and not isinstance(action, FLAG_ACTIONS) and not action.required
                    and "default" not in formatter._expand_help(action)):
                missing.append(f"{label}: default not shown")
    assert missing == []


def test_evaluate_help_describes_the_command_and_shows_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    out = capsys.readouterr().out
    assert "precision / recall / F1" in out and "(default: 0)" in out


def test_version_prints_the_package_version(capsys):
    from maya import __version__

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"maya {__version__}"


def test_global_options_work_before_the_command_as_after_it(tmp_path, capsys):
    before, after = tmp_path / "before", tmp_path / "after"
    assert main(["--data-dir", str(before), "--model", "efficientnet-lite0", "config"]) == 0
    out = capsys.readouterr().out
    assert f"data_dir = {before}  (flag)" in out and "model = efficientnet-lite0  (flag)" in out
    # the one after the command wins
    assert main(["--data-dir", str(before), "config", "--data-dir", str(after)]) == 0
    assert f"data_dir = {after}  (flag)" in capsys.readouterr().out


def test_config_set_writes_the_file_and_its_value_sits_between_env_and_defaults(tmp_path, monkeypatch, capsys):
    cfg = tmp_path / "cfg" / "config.toml"
    monkeypatch.setenv("MAYA_CONFIG", str(cfg))
    assert main(["config", "--set", "model=efficientnet-lite0", "--set", "data_dir=~/maya-store"]) == 0
    out = capsys.readouterr().out
    assert cfg.exists() and f"config file: {cfg} (read)" in out
    assert "model = efficientnet-lite0  (config file)" in out
    assert f"data_dir = {Path.home() / 'maya-store'}  (config file)" in out
    monkeypatch.setenv("MAYA_MODEL", "from-env")
    assert main(["config"]) == 0
    assert "model = from-env  (env MAYA_MODEL)" in capsys.readouterr().out
    assert main(["config", "--unset", "model"]) == 0
    monkeypatch.delenv("MAYA_MODEL")
    assert main(["config"]) == 0
    assert "model = openai/clip-vit-base-patch32  (default)" in capsys.readouterr().out


def test_a_bad_config_file_is_one_line_naming_the_file(tmp_path, monkeypatch, capsys):
    cfg = tmp_path / "config.toml"
    cfg.write_text('modle = "efficientnet-lite0"\n')
    monkeypatch.setenv("MAYA_CONFIG", str(cfg))
    assert main(["config"]) == 2
    err = capsys.readouterr().err
    assert str(cfg) in err and "unknown setting 'modle'" in err


def test_the_default_config_file_is_in_the_platform_config_folder(tmp_path):
    from maya.settings import config_path

    if sys.platform.startswith("linux"):
        assert config_path({"XDG_CONFIG_HOME": str(tmp_path)}) == tmp_path / "maya" / "config.toml"
    assert config_path({"MAYA_CONFIG": "~/m.toml"}) == Path.home() / "m.toml"


def test_the_model_load_error_says_how_to_set_the_model_once(tmp_path, capsys, photo_dir):
    assert main(["dedup", str(photo_dir), "--data-dir", str(tmp_path), "--model", "no-such/model"]) == 2
    assert "maya config --set model=efficientnet-lite0" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- paths, HEIC, noise


def test_find_duplicates_expands_a_leading_tilde(tmp_path, monkeypatch, photo_dir):
    import shutil

    import maya

    home = tmp_path / "home"
    (home / "Pictures").mkdir(parents=True)
    shutil.copy(photo_dir / "astronaut.jpg", home / "Pictures" / "a.jpg")
    shutil.copy(photo_dir / "astronaut.jpg", home / "Pictures" / "b.jpg")
    monkeypatch.setenv("HOME", str(home))
    report = maya.find_duplicates("~/Pictures", mode="phash")
    assert [sorted(os.path.basename(m["path"]) for m in g["members"]) for g in report["groups"]] == [["a.jpg", "b.jpg"]]


def test_the_cli_expands_tilde_in_data_dir_and_folders(tmp_path, monkeypatch, photo_dir, capsys):
    import shutil

    home = tmp_path / "home"
    shutil.copytree(photo_dir, home / "photos")
    monkeypatch.setenv("HOME", str(home))
    assert main(["--data-dir", "~/store", "dedup", "~/photos", "--mode", "phash", "--quiet",
                 "--json", "~/out.json"]) == 0
    assert (home / "store" / "maya.duckdb").exists() and (home / "out.json").exists()
    assert capsys.readouterr().out == ""  # --quiet: no summary


def _heic_twin(folder: Path, photo) -> Path:
    pillow_heif = pytest.importorskip("pillow_heif")
    photo.save(folder / "twin.jpg", quality=90)
    heif = pillow_heif.from_pillow(photo)
    heif.save(folder / "IMG_0001.HEIC", quality=80)
    return folder / "IMG_0001.HEIC"


def test_a_heic_photo_groups_with_its_jpeg_twin(tmp_path, capsys):
    from tests.conftest import photo

    folder = tmp_path / "phone"
    folder.mkdir()
    heic = _heic_twin(folder, photo("chelsea", 400))
    photo("coffee", 400).save(folder / "other.jpg", quality=90)
    from maya.io.images import load_image

    assert load_image(heic).format == "HEIF"
    assert main(["dedup", str(folder), "--mode", "phash", "--data-dir", str(tmp_path / "d"),
                 "--json", str(tmp_path / "g.json")]) == 0
    import json

    groups = json.loads((tmp_path / "g.json").read_text())["groups"]
    assert [sorted(os.path.basename(m["path"]) for m in g["members"]) for g in groups] == [["IMG_0001.HEIC", "twin.jpg"]]


def test_no_raw_decompression_bomb_warning_on_stderr_for_a_photo_under_the_limit(tmp_path):
    from tests.conftest import photo

    path = tmp_path / "big.png"
    photo("coffee", 1200).save(path)  # 1200 x 800: above the Pillow limit set below, under Maya's
    code = ("from PIL import Image; Image.MAX_IMAGE_PIXELS = 600_000; "
            "from maya.io.images import load_image; "
            f"print(load_image({str(path)!r}).width)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "1200"
    assert "DecompressionBombWarning" not in out.stderr and "warnings.warn" not in out.stderr


# ---------------------------------------------------------------------------------------------- dedup options


@pytest.fixture
def twins(tmp_path, photo_dir):
    """Two byte-identical copies of three photos, a thumbnail folder, and a PNG under a cache folder."""
    import shutil

    from PIL import Image

    root = tmp_path / "photos"
    (root / "Thumbnails").mkdir(parents=True)
    (root / "cache").mkdir()
    for name in ("astronaut.jpg", "chelsea.jpg", "coffee.png"):
        shutil.copy(photo_dir / name, root / name)
        shutil.copy(photo_dir / name, root / ("copy-" + name))
    with Image.open(photo_dir / "astronaut.jpg") as im:
        im.resize((32, 32)).save(root / "Thumbnails" / "astronaut-small.jpg")
    shutil.copy(photo_dir / "coffee.png", root / "cache" / "coffee.png")
    return root


def _groups(path: Path) -> list[list[str]]:
    import json

    return sorted(sorted(os.path.relpath(m["path"], path.parent / "photos") for m in g["members"])
                  for g in json.loads(path.read_text())["groups"])


def test_exclude_min_size_and_ext_leave_files_out(twins, tmp_path, capsys):
    base = ["dedup", str(twins), "--mode", "phash", "--data-dir", str(tmp_path / "d"), "--json", str(tmp_path / "g.json")]
    assert main(base) == 0
    assert _groups(tmp_path / "g.json") == [["Thumbnails/astronaut-small.jpg", "astronaut.jpg", "copy-astronaut.jpg"],
                                            ["cache/coffee.png", "coffee.png", "copy-coffee.png"],
                                            ["chelsea.jpg", "copy-chelsea.jpg"]]
    capsys.readouterr()
    assert main(base + ["--exclude", "Thumbnails", "--exclude", "*/cache/*"]) == 0
    assert _groups(tmp_path / "g.json") == [["astronaut.jpg", "copy-astronaut.jpg"], ["chelsea.jpg", "copy-chelsea.jpg"],
                                            ["coffee.png", "copy-coffee.png"]]
    assert "2 files and folders matching --exclude" in capsys.readouterr().out
    assert main(base + ["--min-size", "5KB", "--ext", "jpg"]) == 0
    assert _groups(tmp_path / "g.json") == [["astronaut.jpg", "copy-astronaut.jpg"], ["chelsea.jpg", "copy-chelsea.jpg"]]
    assert main(base + ["--min-size", "lots"]) == 2
    assert "--min-size takes a size" in capsys.readouterr().err


def test_sensitivity_scales_the_thresholds_and_an_explicit_flag_wins(tmp_path, twins, capsys):
    from maya.dedup.options import DedupOptions
    from maya.dedup.sensitivity import Sensitivity

    resolved = DedupOptions("hybrid", 8, 16, 0.80, 0.85)
    strict = Sensitivity("strict").apply(resolved)
    loose = Sensitivity("loose").apply(resolved)
    assert (strict.phash_accept, strict.phash_radius, strict.clip_verify, strict.clip_strict) == (4, 12, 0.8667, 0.9)
    assert (loose.phash_accept, loose.phash_radius, loose.clip_verify, loose.clip_strict) == (12, 20, 0.7333, 0.8)
    assert Sensitivity("strict", frozenset({"phash_accept"})).apply(resolved).phash_accept == 8
    assert Sensitivity("normal").apply(resolved) == resolved
    base = ["dedup", str(twins), "--mode", "phash", "--data-dir", str(tmp_path / "d")]
    assert main(base + ["--sensitivity", "strict"]) == 0
    assert "match rule: pHash d <= 4" in capsys.readouterr().out
    assert main(base + ["--sensitivity", "loose", "--phash-accept", "6"]) == 0
    assert "match rule: pHash d <= 6" in capsys.readouterr().out


def test_the_dry_run_is_one_line_per_group_and_a_summary(twins, tmp_path, capsys):
    assert main(["dedup", str(twins), "--mode", "phash", "--data-dir", str(tmp_path / "d"), "--exclude", "Thumbnails",
                 "--exclude", "cache", "--move-to", str(tmp_path / "aside")]) == 0
    out = capsys.readouterr().out
    plan = [line for line in out.splitlines() if line.startswith("  group ") and "; move 1 (" in line]
    assert len(plan) == 3
    assert "dry run: would move 3 files" in out and "of 3 groups" in out and "nothing was changed" in out
    assert sorted(p.name for p in twins.iterdir() if p.is_file()) == sorted(
        ["astronaut.jpg", "chelsea.jpg", "coffee.png", "copy-astronaut.jpg", "copy-chelsea.jpg", "copy-coffee.png"])
    assert f"database: {tmp_path / 'd' / 'maya.duckdb'}" in out
