"""The Prefect API of commands that run a flow (``maya demo``, ``maya evaluate``, ``maya dedup --engine
prefect``): the configured server when ``PREFECT_API_URL`` is set, else a temporary local server started
before Prefect is imported, so that its boot (seconds) overlaps this process's imports.

Also :func:`quiet_prefect`, the environment Prefect reads at import time. Prefect itself is imported
inside functions only.
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path


def quiet_prefect(verbose: bool, *, hide_flow_logs: bool = True) -> None:
    """No analytics; unless ``verbose``, Dask's INFO lines off and (``hide_flow_logs``) Prefect's console
    log lines too. Read by Prefect at import time, so call before any flow module is imported."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    if not verbose:
        if hide_flow_logs:
            # The CLI prints its own summary and one line per problem; a failed flow's traceback (an ERROR
            # log) would otherwise reach the console. Everything still goes to the Prefect API when one is set.
            os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")


def _configured_elsewhere() -> bool:
    """Whether Prefect may find an API URL in a file (profile, .env, prefect.toml, pyproject.toml)."""
    home = Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()
    profiles = Path(os.environ.get("PREFECT_PROFILES_PATH") or home / "profiles.toml").expanduser()
    for path, needle in ((profiles, "PREFECT_API_URL"), (Path(".env"), "PREFECT_API_URL"),
                         (Path("prefect.toml"), "url"), (Path("pyproject.toml"), "tool.prefect")):
        try:
            from maya.io.opener import ImageLoadError, open_regular_file

            with open_regular_file(path, 16 << 20) as f:  # a FIFO named .env must not hang every command
                if needle in f.read().decode("utf-8", "replace"):
                    return True
        except (OSError, ImageLoadError):
            continue
    return False


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:  # runs in the child before exec (Linux): SIGTERM when we die, even by SIGKILL
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _start_server_process(port: int) -> "subprocess.Popen":
    import importlib.util
    import subprocess

    spec = importlib.util.find_spec("prefect")
    app_dir = Path(next(iter(spec.submodule_search_locations))).parent
    # The command and variables Prefect itself uses for its temporary server (prefect 3.x,
    # prefect.server.api.server.SubprocessASGIServer), started here before `import prefect` so that the
    # server boots while this process imports.
    env = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--app-dir", str(app_dir), "--factory",
         "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port", str(port),
         "--log-level", "error", "--lifespan", "on"],
        env=env, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent if sys.platform == "linux" else None)


def _wait_healthy(url: str, proc: "subprocess.Popen", timeout: float) -> bool:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.05)
    return False


@contextmanager
def prefect_api():
    """A Prefect API for the flows this command runs.

    With ``PREFECT_API_URL`` configured, nothing to do. Otherwise a temporary server (what Prefect's own
    ephemeral mode starts) is started *before* Prefect is imported, so its boot overlaps this process's
    imports (seconds saved per command); its URL goes to ``PREFECT_API_URL``, which Dask workers
    inherit (without it each worker would start a server of its own). It is stopped on exit, and by the
    kernel if this process is killed. ``MAYA_PREFECT_EARLY_SERVER=0`` leaves it all to Prefect.

    Use around the import of the flow and its call::

        with prefect_api():
            from maya.flows.evaluate import evaluate
            evaluate(...)
    """
    if (os.environ.get("PREFECT_API_URL") or "prefect" in sys.modules
            or os.environ.get("PREFECT_SERVER_EPHEMERAL_ENABLED", "").lower() in ("0", "false")
            or os.environ.get("MAYA_PREFECT_EARLY_SERVER", "1") == "0" or _configured_elsewhere()):
        yield None
        return
    timeout = float(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS") or 90)
    port = _free_port()
    proc = _start_server_process(port)
    url = f"http://127.0.0.1:{port}/api"
    os.environ["PREFECT_API_URL"] = url
    try:
        import prefect  # noqa: F401  (the import the flow needs anyway, while the server boots)

        if not _wait_healthy(url, proc, timeout):
            code = proc.poll()
            raise RuntimeError(f"the temporary Prefect server did not start within {timeout:.0f} s"
                               + (f" (it exited with code {code})" if code is not None else "")
                               + "; start one with `prefect server start` and set PREFECT_API_URL")
        yield url
    finally:
        _drain_logs()  # before the server goes: otherwise Prefect's exit-time flush fails on a closed port
        if os.environ.get("PREFECT_API_URL") == url:
            del os.environ["PREFECT_API_URL"]
        _stop(proc)


def _drain_logs() -> None:
    """Send the log lines Prefect still holds to the server (at most a few seconds)."""
    try:
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=5)
    except Exception:  # noqa: BLE001 - best effort: losing a log line must not fail the command
        pass


def _stop(proc: "subprocess.Popen") -> None:
    import subprocess

    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()

