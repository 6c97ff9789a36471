"""Where compute tasks run: threads on this machine by default, or a Dask cluster given its address."""

from __future__ import annotations


def task_runner_for(dask_address: str | None = None, *, local_dask_workers: int | None = None):
    """A Prefect task runner.

    - ``dask_address="tcp://host:8786"``: an existing Dask cluster (prefect-dask's DaskTaskRunner).
    - ``dask_address="local"``: a temporary local Dask cluster of separate worker processes
      (``local_dask_workers`` of them, one thread each).
    - ``None``: Prefect's thread pool in this process.

    Workers only compute and return results; the flow's own process writes DuckDB.
    """
    if not dask_address:
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner()
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError:
        raise RuntimeError("a Dask cluster needs prefect-dask: pip install 'maya[dask]'") from None
    if dask_address == "local":
        return DaskTaskRunner(cluster_kwargs={"n_workers": local_dask_workers or 2, "threads_per_worker": 1,
                                              "processes": True, "dashboard_address": None})
    return DaskTaskRunner(address=dask_address)
