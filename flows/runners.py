"""Where compute tasks run: threads on this machine by default, or a Dask cluster given its address."""

from __future__ import annotations


def task_runner_for(dask_address: str | None = None, *, local_dask_workers: int | None = None):
    """A Prefect task runner.

    - ``dask_address="tcp://host:8786"``: an existing Dask cluster (prefect-dask's DaskTaskRunner).
    - ``dask_address="local"``: a temporary local Dask cluster of separate worker processes
      (``local_dask_workers`` of them, one thread each).
    - ``None``: Prefect's thread pool in this process.

    Workers only compute and return results; the flow's own process writes DuckDB. Workers of a remote
    cluster need maya installed, read access to the image paths (a shared file system), and a Prefect
    API they can reach (``PREFECT_API_URL`` with a routable host, not 127.0.0.1).
    """
    if not dask_address:
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner()
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError:
        raise RuntimeError("a Dask cluster needs prefect-dask: pip install 'mirror-of-maya[dask]'") from None
    if dask_address == "local":
        return DaskTaskRunner(cluster_kwargs={"n_workers": local_dask_workers or 2, "threads_per_worker": 1,
                                              "processes": True, "dashboard_address": None})
    return DaskTaskRunner(address=dask_address)


def api_url_for_workers() -> str:
    """The Prefect API this process talks to, to be handed to worker processes.

    With ``PREFECT_API_URL`` set, that URL. In ephemeral mode (none set) it is the temporary server this
    process started: without it, each Dask worker would start a temporary server of its own (seconds
    each, and task runs scattered over several databases).
    """
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    configured = PREFECT_API_URL.value()
    if configured:
        return str(configured)
    with get_client(sync_client=True) as client:
        return str(client.api_url).rstrip("/")


def run_on_cluster(subflow, dask_address: str, **parameters):
    """Call ``subflow(**parameters)`` with the task runner for ``dask_address``, its workers sent this
    process's Prefect API (see :func:`api_url_for_workers`). For flows that take a ``dask_address``::

        if dask_address:
            return run_on_cluster(evaluate_on_cluster, dask_address, **params)
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings

    runner = task_runner_for(dask_address)
    # Workers take the API URL from the settings sent with each task; in ephemeral mode that is empty
    # and every worker would start a temporary server of its own (shared/notes/prefect.md section 4).
    with temporary_settings(updates={PREFECT_API_URL: api_url_for_workers()}):
        return subflow.with_options(task_runner=runner)(**parameters)


def dask_in_flight() -> int:
    """Batches to keep in flight on a Dask cluster: two per worker thread (at least 2), so no worker waits
    while the flow's process commits."""
    try:
        from distributed import get_client

        info = get_client().scheduler_info()
        return max(2, 2 * sum(w.get("nthreads", 1) for w in info.get("workers", {}).values()))
    except Exception:  # noqa: BLE001 - no client reachable from here: a safe default
        return 4
