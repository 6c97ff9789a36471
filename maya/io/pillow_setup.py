"""What Maya sets up in Pillow, once per process, before the first decode (:mod:`maya.io.images`).

* HEIC / HEIF (phone photos): when ``pillow-heif`` is installed (``pip install 'mirror-of-maya[heic]'``), its
  opener is registered, so "HEIF" joins the formats decoded; without it such files are ``unsupported``
  with that advice.
* Pillow's DecompressionBombWarning (declared width x height above ``PIL.Image.MAX_IMAGE_PIXELS``, 89.5 MP)
  is ignored: Maya rejects images above its own ``max_pixels`` (default 179 MP) from the header, and a raw
  ``warnings.warn(`` line on stderr for a normal 100 MP panorama only alarms users. A caller who turns
  warnings into errors (``-W error``) still gets them as ``too_large``.
"""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def prepare_pillow() -> None:
    """Register pillow-heif's opener when installed and silence DecompressionBombWarning (once)."""
    import warnings

    from PIL import Image

    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
    try:
        from pillow_heif import register_heif_opener
    except ImportError:
        return
    register_heif_opener()
