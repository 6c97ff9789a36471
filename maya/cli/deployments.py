"""Maya's two Prefect deployments, defined once, as plain data (no Prefect import):

* ``evaluate/evaluate-on-demand`` -- the study, run when triggered (``maya run evaluate --param dataset=demo``);
* ``dedup/dedup-nightly`` -- dedup of the configured folders every night (cron, default 02:00 UTC).

``maya serve`` and ``maya deploy`` register :func:`deployment_specs`; ``deployments/prefect.yaml`` (for
``prefect deploy``) is :func:`render_prefect_yaml`'s text, written by ``python deployments/write_yaml.py``
and checked against the code by the tests. Names are an interface: ``prefect deployment run
evaluate/evaluate-on-demand`` works.
"""

from __future__ import annotations

import json
import os
import textwrap
from dataclasses import dataclass, field
from pathlib import Path


def _flows_folder() -> Path:
    """The folder of maya.flows (the repository's flows/ in a checkout, maya/flows in a wheel), found
    without importing the flows (Prefect)."""
    import importlib.util

    return Path(importlib.util.find_spec("maya.flows").submodule_search_locations[0]).resolve()


#: The folder a worker runs flows from: deployment entrypoints (``flows/evaluate.py:evaluate``) are relative to it.
PROJECT_ROOT = _flows_folder().parent
FLOWS = _flows_folder().name

EVALUATE_DEPLOYMENT = "evaluate/evaluate-on-demand"
DEDUP_DEPLOYMENT = "dedup/dedup-nightly"
DEPLOYMENTS = {"evaluate": EVALUATE_DEPLOYMENT, "dedup": DEDUP_DEPLOYMENT}

#: When the nightly dedup runs unless told otherwise (env MAYA_DEDUP_CRON, MAYA_DEDUP_TIMEZONE).
DEFAULT_DEDUP_CRON = "0 2 * * *"
DEFAULT_TIMEZONE = "UTC"
DEFAULT_WORK_POOL = "maya"
#: The one variable naming the nightly dedup's folders (``os.pathsep``-separated).
DEDUP_FOLDERS_ENV = "MAYA_DEDUP_FOLDERS"


@dataclass(frozen=True)
class DeploymentSpec:
    """One deployment, as plain data (no Prefect objects): what serve, deploy, prefect.yaml and the tests share."""

    flow_name: str  # the @flow's name
    name: str  # the deployment's name
    entrypoint: str  # "path/relative/to/project.py:function"
    parameters: dict = field(default_factory=dict)
    cron: str | None = None
    timezone: str = DEFAULT_TIMEZONE
    paused: bool = False
    description: str = ""
    tags: tuple[str, ...] = ("maya",)

    @property
    def full_name(self) -> str:
        return f"{self.flow_name}/{self.name}"


def dedup_folders_from_env(env=None) -> list[str]:
    """Folders of the nightly dedup from ``MAYA_DEDUP_FOLDERS`` (``os.pathsep``-separated)."""
    raw = (env if env is not None else os.environ).get(DEDUP_FOLDERS_ENV, "")
    return [p for p in raw.split(os.pathsep) if p.strip()]


def deployment_specs(*, data_dir: str | Path, dedup_folders: list[str] | None = None, model: str | None = None,
                     cron: str | None = None, timezone: str | None = None) -> list[DeploymentSpec]:
    """The two deployments of Maya for a data folder.

    ``data_dir`` becomes a parameter of both (absolute), so scheduled runs write the database the
    user's ``maya sql`` reads. ``dedup_folders``: what the nightly dedup scans; with none, the nightly
    deployment is registered paused (run it by hand with ``--param paths=[...]``, or set folders and
    deploy again). ``model``: the embedding model of both (None: the serving process's MAYA_MODEL).
    """
    data_dir = Path(data_dir).expanduser().resolve()
    folders = [str(Path(p).expanduser().resolve()) for p in (dedup_folders or [])]
    reports = data_dir / "reports"
    return _specs(str(data_dir), folders, model, cron or os.environ.get("MAYA_DEDUP_CRON") or DEFAULT_DEDUP_CRON,
                  timezone or os.environ.get("MAYA_DEDUP_TIMEZONE") or DEFAULT_TIMEZONE,
                  reports={"json_path": str(reports / "dedup-nightly.json"),
                           "html_path": str(reports / "dedup-nightly.html")})


def _specs(data_dir: str, folders: list[str], model: str | None, cron: str, timezone: str, *,
           reports: dict[str, str]) -> list[DeploymentSpec]:
    """The definitions themselves, for final paths (``deployment_specs``) or placeholders (the YAML).
    ``reports``: the nightly dedup's ``json_path`` and ``html_path``."""
    common = {"data_dir": data_dir, **({"model": model} if model else {})}
    return [
        DeploymentSpec(
            flow_name="evaluate", name="evaluate-on-demand", entrypoint=f"{FLOWS}/evaluate.py:evaluate",
            parameters={"dataset": "demo", **common},
            description="Score a dataset's labelled pairs with pHash and the embedding model; P/R/F1 per "
                        "method into DuckDB. Parameters: dataset, source (folder of originals: build pairs "
                        "first), seed, model, data_dir, refresh, dask_address, ..."),
        DeploymentSpec(
            flow_name="dedup", name="dedup-nightly", entrypoint=f"{FLOWS}/dedup.py:dedup",
            parameters={"paths": folders, "mode": "hybrid", **common, **reports},
            cron=cron, timezone=timezone, paused=not folders,
            description="Find the near-duplicate groups under the configured folders (parameter paths); "
                        "report as JSON and HTML under <data_dir>/reports; nothing is moved or deleted."),
    ]


# ---------------------------------------------------------------------------------------------- prefect.yaml

#: The Prefect version the generated prefect.yaml was checked with (informational for ``prefect deploy``).
PREFECT_YAML_VERSION = "3.9.1"

_YAML_HEADER = """\
# Maya's two deployments for `prefect deploy` (the same ones `maya deploy` and `maya serve` register).
# GENERATED from maya/cli/deployments.py by `python deployments/write_yaml.py`: do not edit by hand
# (tests/test_deployments.py fails when this file and the code disagree).
#
#   cd /path/to/maya                       # the project root: entrypoints are relative to it
#   export PREFECT_API_URL=http://127.0.0.1:4200/api
#   export MAYA_DATA_DIR=$PWD/maya-data    # where runs write DuckDB, derived images and reports
#   export MAYA_DEDUP_FOLDERS=/photos      # what the nightly dedup scans
#   prefect work-pool create maya --type process
#   prefect --no-prompt deploy --all --prefect-file deployments/prefect.yaml
#   prefect worker start --pool maya       # runs them; leave it running
#   prefect deployment run evaluate/evaluate-on-demand --param dataset=demo --watch
#
# {{ $VAR }} is replaced by the environment variable VAR when `prefect deploy` runs, as one string: here
# MAYA_DEDUP_FOLDERS names one folder. For several (separated by the OS path separator), use
# `maya deploy`, which splits them, or `--param 'paths=["/a", "/b"]'` when triggering a run.
"""


def render_prefect_yaml() -> str:
    """The text of ``deployments/prefect.yaml``: :func:`deployment_specs` with ``{{ $MAYA_DATA_DIR }}`` and
    ``{{ $MAYA_DEDUP_FOLDERS }}`` in place of the data folder and the folders, the default schedule, and
    the work pool ``maya``. Independent of the environment it runs in."""
    data = "{{ $MAYA_DATA_DIR }}"
    specs = _specs(data, ["{{ $%s }}" % DEDUP_FOLDERS_ENV], None, DEFAULT_DEDUP_CRON, DEFAULT_TIMEZONE,
                   reports={"json_path": f"{data}/reports/dedup-nightly.json",
                            "html_path": f"{data}/reports/dedup-nightly.html"})
    out = [_YAML_HEADER, "name: maya", f"prefect-version: {PREFECT_YAML_VERSION}", "",
           "# The worker runs flows from the project folder the deployments were made from.",
           "pull:", "- prefect.deployments.steps.set_working_directory:", '    directory: "{{ $PWD }}"', "",
           "deployments:"]
    for k, s in enumerate(specs):
        if k:
            out.append("")
        out += [f"- name: {s.name}", f"  entrypoint: {s.entrypoint}", "  description: >-"]
        out += textwrap.wrap(s.description, width=100, initial_indent="    ", subsequent_indent="    ")
        out.append(f"  tags: [{', '.join(s.tags)}]")
        out.append("  parameters:")
        out += [f"    {key}: {json.dumps(value)}" for key, value in s.parameters.items()]
        if s.cron:
            out += ["  schedules:", f"  - cron: {json.dumps(s.cron)}", f"    timezone: {s.timezone}"]
        if s.paused:
            out.append("  paused: true")
        out += ["  concurrency_limit: 1            # DuckDB has one writer: a second run waits for the first",
                "  work_pool:", f"    name: {DEFAULT_WORK_POOL}"]
    return "\n".join(out) + "\n"
