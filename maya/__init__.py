"""Maya: find near-duplicate and semantically similar images (pHash + image embeddings)."""

__version__ = "0.1.0"


def __getattr__(name):
    # Keep `import maya` cheap: the dedup API pulls in numpy/PIL/torch only when used.
    if name == "find_duplicates":
        from maya.dedup.pipeline import find_duplicates

        return find_duplicates
    if name == "search":  # near-duplicates of query images in an indexed collection (maya.index.search)
        from maya.index.search import search

        return search
    if name == "evaluate_dataset":  # the study, without Prefect (maya.evaluation.study.run_study)
        from maya.evaluation.study import run_study

        return run_study
    raise AttributeError(name)
