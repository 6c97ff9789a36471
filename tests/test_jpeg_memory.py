"""A huge JPEG is decoded reduced (libjpeg's DCT scaling through ``Image.draft``): the memory of a decode stays
far below the full-resolution pixels, so a dedup's peak does not follow the largest photo."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.slow

_PROBE = r"""
import json, resource, sys
from maya.io import images
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
loaded = images.load_image(sys.argv[1])
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"size": loaded.image.size, "original": [loaded.width, loaded.height], "grew_mib": after - before}))
"""


def test_a_48_megapixel_baseline_jpeg_decodes_reduced_in_a_fraction_of_its_pixels_memory(tmp_path):
    rng = np.random.default_rng(7)
    coarse = Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8))
    path = tmp_path / "huge.jpg"
    coarse.resize((8000, 6000), Image.Resampling.BILINEAR).save(path, quality=85)  # 48 MP: 137 MiB as RGB
    out = subprocess.run([sys.executable, "-c", _PROBE, str(path)], capture_output=True, text=True, check=True)
    probe = json.loads(out.stdout)
    assert probe["original"] == [8000, 6000]
    assert probe["size"] == [500, 375]  # 1/8 by DCT scaling (1000x750), then one 2x box reduction
    assert probe["grew_mib"] < 60, probe  # a full decode holds 137 MiB of RGB (Pillow: 183 MiB at 4 bytes/pixel)
