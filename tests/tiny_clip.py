"""A tiny random CLIP checkpoint on disk, for tests that need a real CLIP load path offline.

``make_tiny_clip(dir)`` writes what ``CLIPModel.save_pretrained`` and
``CLIPImageProcessor.save_pretrained`` write for a real checkpoint (config.json,
model.safetensors, preprocessor_config.json), at 32x32 input with 77 k parameters, so that
``load_embedder(str(dir))`` exercises the same ``from_pretrained`` path as a user's model.
Building one takes ~10 ms after transformers is imported; same seed, same weights.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TINY_IMAGE_SIZE = 32
TINY_EMBED_DIM = 16


def make_tiny_clip(path: str | os.PathLike, seed: int = 0) -> Path:
    """Write a tiny random CLIP checkpoint (vision: hidden 32, 2 layers, 32 px, patch 8) to ``path``.

    Returns the folder. Different ``seed`` -> different weights, same architecture.
    """
    import torch
    from transformers import CLIPConfig, CLIPModel
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
    from transformers.utils import logging as hf_logging

    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    config = CLIPConfig(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=TINY_IMAGE_SIZE, patch_size=8, projection_dim=TINY_EMBED_DIM),
        # Special token ids inside the tiny vocabulary; CLIP's defaults (49406/49407) would warn.
        text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                         vocab_size=1000, max_position_embeddings=16, projection_dim=TINY_EMBED_DIM,
                         bos_token_id=0, eos_token_id=2, pad_token_id=1),
        projection_dim=TINY_EMBED_DIM,
    )
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = CLIPModel(config).eval()
        model.save_pretrained(folder)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    CLIPImageProcessorPil(size={"shortest_edge": TINY_IMAGE_SIZE},
                          crop_size={"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE}).save_pretrained(folder)
    return folder
