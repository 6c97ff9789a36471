"""Prefect task wrappers around :mod:`maya`: retries, cache policies, logging. Thin by design."""
