"""Image embeddings: devices, preprocessing, models (CLIP, efficientnet-lite0), neighbour search."""
