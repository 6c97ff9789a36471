"""The report renders in a real browser: headless Chromium loads it and every image decodes."""

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from maya.report.study import write_report
from tests.demo_db import demo_store  # noqa: F401  (fixture)

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# Appended to a copy of the page: after the load event, write into the DOM how many images there are and
# how many failed to decode (complete && naturalWidth > 0 is the browser's own "this image loaded").
CHECK_SCRIPT = """<script>
window.addEventListener("load", () => {
  const imgs = Array.from(document.images);
  document.body.setAttribute("data-images", imgs.length);
  document.body.setAttribute("data-broken", imgs.filter(i => !(i.complete && i.naturalWidth > 0)).length);
});
</script>"""


def _chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
         f"--user-data-dir={profile}", "--virtual-time-budget=10000", *args],
        capture_output=True, text=True, timeout=120)


def _loaded_images(page: Path, profile: Path) -> tuple[int, int]:
    """(images, broken images) of ``page`` as Chromium sees it after load."""
    html = page.read_text(encoding="utf-8")
    check = page.with_name("_check_" + page.name)  # same folder: relative links resolve the same way
    check.write_text(html.replace("</body>", CHECK_SCRIPT + "</body>"), encoding="utf-8")
    out = _chromium(["--dump-dom", check.as_uri()], profile)
    m = re.search(r'<body[^>]*data-images="(\d+)"[^>]*data-broken="(\d+)"', out.stdout)
    assert m, f"no result in the DOM (rc {out.returncode}): {out.stderr[-2000:]}"
    return int(m.group(1)), int(m.group(2))


@pytest.fixture(scope="module")
def page(demo_store, tmp_path_factory):  # noqa: F811
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium; CI's .ci/run installs it)")
    return write_report(demo_store.db_path, out_dir=tmp_path_factory.mktemp("browser-report"))


def test_every_image_of_the_report_loads_in_chromium(page, tmp_path):
    n_img = len(re.findall(r"<img\b", page.read_text(encoding="utf-8")))
    images, broken = _loaded_images(page, tmp_path / "profile")
    assert images == n_img and images >= 6
    assert broken == 0


def test_the_check_sees_a_broken_image(page, tmp_path):
    """The same check on a page with one missing picture reports it (the check can fail)."""
    bad = page.with_name("bad.html")
    bad.write_text(page.read_text(encoding="utf-8").replace(
        "<h2>Pictures</h2>", '<h2>Pictures</h2><img src="no-such-picture.png" alt="missing">'), encoding="utf-8")
    images, broken = _loaded_images(bad, tmp_path / "profile")
    assert broken == 1 and images >= 7


def test_screenshot_shows_the_rendered_page(page, tmp_path):
    shot = tmp_path / "report.png"
    out = _chromium(["--hide-scrollbars", "--window-size=1280,1600", f"--screenshot={shot}", page.as_uri()],
                    tmp_path / "profile")
    assert shot.exists(), out.stderr[-2000:]
    with Image.open(shot) as im:
        px = np.asarray(im.convert("L"), dtype=np.float64)
    assert px.shape == (1600, 1280)
    assert px.std() > 20  # text, tables and curves, not a blank page
