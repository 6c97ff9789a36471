"""Prefect flows: the pipelines, reading top to bottom like the diagram in DESIGN.md."""
