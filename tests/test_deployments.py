"""The deployments are defined once (maya/cli/deployments.py); deployments/prefect.yaml is generated from
that code, and what `prefect deploy` makes of it is what `maya serve` / `maya deploy` register."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from maya.cli.deployments import DEDUP_FOLDERS_ENV, deployment_specs, render_prefect_yaml

ROOT = Path(__file__).resolve().parent.parent
YAML = ROOT / "deployments" / "prefect.yaml"


def test_committed_prefect_yaml_is_what_the_code_generates():
    assert YAML.read_text() == render_prefect_yaml(), "run: python deployments/write_yaml.py"


def test_write_yaml_check_passes_on_the_committed_file_and_fails_on_a_stale_one(tmp_path):
    ok = subprocess.run([sys.executable, str(ROOT / "deployments" / "write_yaml.py"), "--check"],
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    # a copy of the script next to a hand-edited prefect.yaml: --check fails and names the fix
    (tmp_path / "write_yaml.py").write_text((ROOT / "deployments" / "write_yaml.py").read_text()
                                            .replace("parent.parent))", f"parent.parent)); sys.path.insert(0, {str(ROOT)!r})"))
    (tmp_path / "prefect.yaml").write_text(YAML.read_text().replace("0 2 * * *", "0 3 * * *"))
    stale = subprocess.run([sys.executable, str(tmp_path / "write_yaml.py"), "--check"], capture_output=True,
                           text=True, timeout=60)
    assert stale.returncode == 1 and "write_yaml.py" in stale.stderr


def test_generated_yaml_does_not_depend_on_the_environment(monkeypatch):
    before = render_prefect_yaml()
    monkeypatch.setenv("MAYA_DEDUP_CRON", "5 5 * * *")
    monkeypatch.setenv("MAYA_DEDUP_TIMEZONE", "Europe/Paris")
    monkeypatch.setenv(DEDUP_FOLDERS_ENV, "/x")
    assert render_prefect_yaml() == before


def test_prefect_deploy_fills_the_yaml_with_the_parameters_maya_serve_registers(monkeypatch, tmp_path):
    from prefect.utilities.templating import apply_values

    data, photos = tmp_path / "data", tmp_path / "photos"
    photos.mkdir()
    monkeypatch.setenv("MAYA_DATA_DIR", str(data))
    monkeypatch.setenv(DEDUP_FOLDERS_ENV, str(photos))
    monkeypatch.delenv("MAYA_DEDUP_CRON", raising=False)
    monkeypatch.delenv("MAYA_DEDUP_TIMEZONE", raising=False)
    conf = yaml.safe_load(YAML.read_text())
    assert "MAYA_DEDUP_FOLDER " not in YAML.read_text() and "MAYA_DEDUP_FOLDER}" not in YAML.read_text()
    # what `prefect deploy` does with {{ $VAR }} (prefect.cli.deploy: apply_values(config, os.environ))
    filled = {d["name"]: apply_values(d, {}, remove_notset=False) for d in conf["deployments"]}
    for spec in deployment_specs(data_dir=data, dedup_folders=[str(photos)]):
        d = filled[spec.name]
        assert d["parameters"] == spec.parameters, spec.name
        assert d["entrypoint"] == spec.entrypoint and (ROOT / spec.entrypoint.split(":")[0]).is_file()
        assert d["tags"] == list(spec.tags) and d.get("paused", False) == spec.paused
        assert [(c["cron"], c["timezone"]) for c in d.get("schedules", [])] == (
            [(spec.cron, spec.timezone)] if spec.cron else [])
