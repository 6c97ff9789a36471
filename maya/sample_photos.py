"""Real photos that a dependency ships (scikit-image's sample data), for the demo and the tests.

Left out on purpose: ``motorcycle_right`` (a stereo twin of ``motorcycle_left``, a near-duplicate) and
``chessboard_GRAY`` (the grey copy of ``chessboard_RGB``), so that different originals really differ.
"""

from __future__ import annotations

import shutil
from pathlib import Path

PHOTOS = (
    "astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png", "camera.png",
    "coins.png", "moon.png", "page.png", "brick.png", "grass.png", "gravel.png", "hubble_deep_field.jpg",
    "ihc.png", "retina.jpg", "cell.png", "clock_motion.png", "color.png", "logo.png", "text.png",
    "horse.png", "microaneurysms.png", "phantom.png", "chessboard_RGB.png",
)


def sample_photo_paths() -> list[Path]:
    """Paths of the bundled photos that exist in the installed scikit-image."""
    import skimage.data

    root = Path(skimage.data.__file__).resolve().parent
    return [root / n for n in PHOTOS if (root / n).exists()]


def copy_sample_photos(dest: str | Path) -> Path:
    """Copy the sample photos into ``dest`` (once) and return it: a folder of originals for the demo."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for p in sample_photo_paths():
        target = dest / p.name
        if not target.exists() or target.stat().st_size != p.stat().st_size:
            shutil.copyfile(p, target)
    return dest
