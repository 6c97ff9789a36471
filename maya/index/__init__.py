"""The persistent collection index behind ``maya search`` and incremental dedup.

Derived files under the data folder (``<data dir>/index/``), never a second source of truth: DuckDB holds
every hash and embedding; the index holds a copy laid out for search (one file per hash algorithm and one
per embedding model) with a stamp of the table rows it was made from. :mod:`maya.index.collection` keeps
them current (append what is new, rebuild when missing or stale); :mod:`maya.index.search` answers queries.
"""
