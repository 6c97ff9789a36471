"""Image preprocessing for the embedders: resize the shortest side, centre-crop, normalise.

Pillow resizes and numpy crops and normalises, so a model's input is made without a model runtime (the
ONNX Runtime embedder never imports torch); it matches the Hugging Face processors to within rounding.
:class:`ImagePreprocessing` takes PIL images (N,) and returns a float32 array (N, 3, crop_h, crop_w),
normalised by the model's mean and std; :meth:`ImagePreprocessing.to_uint8` gives one image's uint8 pixels
(3, crop_h, crop_w), which a GPU embedder normalises on the device (:meth:`ImagePreprocessing.normalize`).
"""

from __future__ import annotations


from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np


if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch
    from PIL import Image


# Bump when the pixels fed to a model change for the same image and weights (resize rule,
# crop, colour conversion, the decode's alpha compositing), so that cached embeddings made the old way
# are not reused. pp2: transparent images are composited over a contrasting background (decode v2).
# pp3: resized by Pillow instead of torch's antialiased interpolate (at most 2 levels apart on ~0.2 % of pixels).
PREPROCESS_VERSION = "pp3"


def versioned_model_id(base: str, precision: str) -> str:
    """``base`` (weights identity) + precision when not fp32 + preprocessing version: an embedding cache key."""
    return base + (f"|{precision}" if precision != "fp32" else "") + f"|{PREPROCESS_VERSION}"


_RESAMPLE_MODES = {2: "bilinear", 3: "bicubic"}  # PIL resample codes -> filter names
_PIL_FILTERS = {"bilinear": 2, "bicubic": 3}  # filter names -> PIL.Image.Resampling codes


@dataclass(frozen=True)
class ImagePreprocessing:
    """Resize, centre-crop and normalise PIL images into a model's input tensor.

    Same rules as transformers' CLIP image processor: resize so the shortest side is
    ``shortest_side`` (long side ``int(shortest_side * long / short)``), or to exactly
    ``resize_hw`` when that is set; centre-crop ``crop_hw`` (zero-padding an image smaller
    than the crop); scale to [0, 1]; subtract ``mean`` and divide by ``std`` per channel.
    Transparent images are composited onto white first. Resizing is Pillow's antialiased filter on
    uint8, as in the processor, so the result differs from the processor's only by rounding.
    """

    shortest_side: int | None = 224
    resize_hw: tuple[int, int] | None = None
    crop_hw: tuple[int, int] | None = (224, 224)
    mean: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
    std: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)
    resample: str = "bicubic"
    rescale: float = 1.0 / 255.0

    @classmethod
    def from_processor_config(cls, config: dict[str, Any]) -> "ImagePreprocessing":
        """Read a transformers ``preprocessor_config.json`` dict (CLIPImageProcessor style).

        Raises ``ValueError`` for settings this class does not reproduce.
        """
        size = config.get("size", 224) if config.get("do_resize", True) else None
        shortest_side: int | None = None
        resize_hw: tuple[int, int] | None = None
        if isinstance(size, int):
            shortest_side = size
        elif isinstance(size, dict):
            if size.get("longest_edge") is not None:
                raise ValueError(f"resize with a longest_edge limit is not supported: {size}")
            if size.get("shortest_edge") is not None:
                shortest_side = int(size["shortest_edge"])
            elif size.get("height") is not None and size.get("width") is not None:
                resize_hw = (int(size["height"]), int(size["width"]))
            else:
                raise ValueError(f"unsupported resize size: {size}")
        crop = config.get("crop_size", 224) if config.get("do_center_crop", True) else None
        crop_hw: tuple[int, int] | None
        if crop is None:
            crop_hw = None
        elif isinstance(crop, int):
            crop_hw = (crop, crop)
        else:
            crop_hw = (int(crop["height"]), int(crop["width"]))
        resample_code = int(config.get("resample", 3))
        if resample_code not in _RESAMPLE_MODES:
            raise ValueError(f"unsupported resample filter {resample_code} (only bilinear=2, bicubic=3)")
        if config.get("do_normalize", True):
            mean = tuple(float(v) for v in config.get("image_mean", cls.mean))
            std = tuple(float(v) for v in config.get("image_std", cls.std))
        else:
            mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
        rescale = float(config.get("rescale_factor", 1 / 255)) if config.get("do_rescale", True) else 1.0
        if shortest_side is None and resize_hw is None and crop_hw is None:
            raise ValueError("a preprocessing with neither resize nor crop gives images of any size")
        return cls(shortest_side=shortest_side, resize_hw=resize_hw, crop_hw=crop_hw,
                   mean=mean, std=std,  # type: ignore[arg-type]  # three floats, read from JSON
                   resample=_RESAMPLE_MODES[resample_code], rescale=rescale)

    @property
    def output_hw(self) -> tuple[int, int]:
        """(height, width) of the tensors this produces, in pixels."""
        if self.crop_hw is not None:
            return self.crop_hw
        if self.resize_hw is not None:
            return self.resize_hw
        raise ValueError("output size depends on the image: set crop_hw or resize_hw")

    @property
    def min_source_side(self) -> int:
        """Smallest source side (pixels) that loses nothing: decode no smaller than this."""
        if self.resize_hw is not None:
            return max(self.resize_hw)
        if self.shortest_side is not None:
            return self.shortest_side
        return max(self.output_hw)

    def to_uint8(self, image: "Image.Image") -> np.ndarray:
        """One image resized and cropped: (3, H, W) uint8, not yet normalised.

        Resized by Pillow (antialiased bicubic or bilinear, which torch's ``antialias=True`` filters
        copy: the two differ by at most 2 levels on ~0.2 % of pixels), so no model runtime is needed to
        make a model's input.
        """
        image = _as_rgb(image)
        w, h = image.size
        target = self._resized_hw(h, w)
        if target != (h, w):
            image = image.resize((target[1], target[0]), _PIL_FILTERS[self.resample])
        x = np.asarray(image, dtype=np.uint8)
        if self.crop_hw is not None:
            x = _center_crop(x, self.crop_hw)
        return np.ascontiguousarray(x.transpose(2, 0, 1))

    def normalize(self, batch: "torch.Tensor") -> "torch.Tensor":
        """(N, 3, H, W) uint8 torch tensor -> float32 normalised, on ``batch``'s device."""
        import torch

        mean = torch.tensor(self.mean, dtype=torch.float32, device=batch.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32, device=batch.device).view(1, 3, 1, 1)
        # (x * rescale - mean) / std  ==  x * (rescale / std) - mean / std
        return torch.addcmul(-mean / std, batch.to(torch.float32), self.rescale / std)

    def normalize_array(self, batch: np.ndarray) -> np.ndarray:
        """(N, 3, H, W) uint8 array -> float32 normalised, the same arithmetic as :meth:`normalize`."""
        mean = np.asarray(self.mean, dtype=np.float32).reshape(1, 3, 1, 1)
        std = np.asarray(self.std, dtype=np.float32).reshape(1, 3, 1, 1)
        scale = np.float32(self.rescale) / std
        out = batch.astype(np.float32)
        out *= scale
        out -= mean / std
        return out

    def __call__(self, images: Sequence["Image.Image"]) -> np.ndarray:
        """(N, 3, H, W) float32 array, normalised."""
        return self.normalize_array(self.stack_uint8([self.to_uint8(im) for im in images]))

    def stack_uint8(self, arrays: Sequence[np.ndarray]) -> np.ndarray:
        """Stack :meth:`to_uint8` outputs into (N, 3, H, W) uint8 (N may be 0)."""
        if len(arrays) == 0:
            return np.empty((0, 3, *self.output_hw), dtype=np.uint8)
        return np.stack(list(arrays))

    def _resized_hw(self, h: int, w: int) -> tuple[int, int]:
        if self.resize_hw is not None:
            return self.resize_hw
        if self.shortest_side is None:
            return (h, w)
        s = self.shortest_side
        # transformers' get_resize_output_image_size: the long side is truncated, not rounded.
        if w <= h:
            return (int(s * h / w), s)
        return (s, int(s * w / h))


def _as_rgb(image: "Image.Image") -> "Image.Image":
    """RGB version of ``image``; transparency is composited onto white, as transformers does."""
    from PIL import Image

    if image.mode == "RGB":
        return image
    if "A" in image.getbands() or image.info.get("transparency") is not None:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _center_crop(x: np.ndarray, crop_hw: tuple[int, int]) -> np.ndarray:
    """Centre crop an (h, w, 3) array to ``crop_hw``; zero-pads first where the image is smaller."""
    ch, cw = crop_hw
    h, w = x.shape[:2]
    if h < ch or w < cw:
        pad_h, pad_w = max(ch - h, 0), max(cw - w, 0)
        top, left = (pad_h + 1) // 2, (pad_w + 1) // 2  # ceil, like transformers
        x = np.pad(x, ((top, pad_h - top), (left, pad_w - left), (0, 0)))
        h, w = x.shape[:2]
    top, left = (h - ch) // 2, (w - cw) // 2
    return x[top:top + ch, left:left + cw]
