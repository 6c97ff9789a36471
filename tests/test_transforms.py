"""Tests for maya.pairs.transforms (seeded edit catalogue) and maya.report.contact_sheet."""

from __future__ import annotations

import io
import json
import statistics

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from skimage import data as skdata

from maya.report.contact_sheet import contact_sheet
from maya.pairs.transforms import (
    ENCODING_KINDS,
    KINDS,
    LEVEL_FREE_KINDS,
    LEVELS,
    Variant,
    encode_png,
    kinds_for_level,
    make_chain,
    make_variant,
    perspective_coefficients,
)

# Kinds that keep the picture's width and height exactly.
SAME_SIZE_KINDS = {
    "jpeg_quality", "webp", "png_reencode", "hflip", "grayscale", "brightness", "contrast",
    "saturation", "hue", "gamma", "blur", "sharpen", "noise", "pixelate", "text_overlay",
    "shape_overlay", "watermark", "perspective",
}  # fmt: skip
FORMAT_OF_EXT = {"png": "PNG", "jpg": "JPEG", "webp": "WEBP"}


# Real photos at reduced size: every test makes dozens of variants, and an edit's logic does
# not depend on the pixel count (the 1 MP timing test scales coffee up).
@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    return Image.fromarray(skdata.astronaut()).resize((256, 256), Image.Resampling.LANCZOS)


@pytest.fixture(scope="module")
def chelsea() -> Image.Image:
    return Image.fromarray(skdata.chelsea())  # 451 x 300 RGB


@pytest.fixture(scope="module")
def coffee() -> Image.Image:
    return Image.fromarray(skdata.coffee())  # 600 x 400 RGB


@pytest.fixture(scope="module")
def small_coffee(coffee) -> Image.Image:
    return coffee.resize((300, 200), Image.Resampling.LANCZOS)


def _rgb_array(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def _mean_abs_difference(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(_rgb_array(a) - _rgb_array(b)).mean())


# --------------------------------------------------------------------------- catalogue


def test_catalogue_has_at_least_22_distinct_kinds_and_three_levels():
    assert len(KINDS) >= 22
    assert len(set(KINDS)) == len(KINDS)
    assert LEVELS == ("light", "medium", "strong")
    assert set(ENCODING_KINDS) <= set(KINDS)
    assert set(LEVEL_FREE_KINDS) <= set(KINDS)


def test_kinds_for_level_light_leaves_out_mirror_and_quarter_turn():
    assert kinds_for_level("medium") == KINDS
    assert kinds_for_level("strong") == KINDS
    light = kinds_for_level("light")
    assert "hflip" not in light and "rotate_90" not in light
    assert set(light) == set(KINDS) - {"hflip", "rotate_90"}
    with pytest.raises(ValueError, match="level"):
        kinds_for_level("extreme")


def test_unknown_kind_or_level_is_rejected(astronaut):
    with pytest.raises(ValueError, match="kind"):
        make_variant(astronaut, "posterise", np.random.default_rng(0))
    with pytest.raises(ValueError, match="level"):
        make_variant(astronaut, "blur", np.random.default_rng(0), level="huge")


# --------------------------------------------------------------------------- every kind


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_and_level_gives_a_decodable_image_of_sensible_size(kind, chelsea):
    w, h = chelsea.size
    for level in LEVELS:
        variant = make_variant(chelsea, kind, np.random.default_rng(7), level)
        assert isinstance(variant, Variant)
        assert variant.kind == kind
        decoded = Image.open(io.BytesIO(variant.data))
        assert decoded.format == FORMAT_OF_EXT[variant.ext]
        decoded.load()
        if kind in SAME_SIZE_KINDS:
            assert decoded.size == (w, h)
        elif kind == "rotate_90":
            assert decoded.size in {(w, h), (h, w)}
        else:
            assert 0.15 * w <= decoded.width <= 2.1 * w
            assert 0.15 * h <= decoded.height <= 2.1 * h
        # Params are plain JSON and survive a round trip unchanged.
        assert json.loads(json.dumps(variant.params)) == variant.params
        assert variant.params["level"] == level


@pytest.mark.parametrize("kind", KINDS)
def test_file_format_follows_the_kind(kind, chelsea):
    variant = make_variant(chelsea, kind, np.random.default_rng(1), "medium")
    expected = {"jpeg_quality": "jpg", "webp": "webp"}.get(kind, "png")
    assert variant.ext == expected


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_changes_the_pixels_except_lossless_png(kind, small_coffee):
    for level in LEVELS:
        decoded = make_variant(small_coffee, kind, np.random.default_rng(3), level).decode()
        if kind == "png_reencode" and level == "light":
            assert np.array_equal(np.asarray(decoded.convert("RGB")), np.asarray(small_coffee))
        elif decoded.size == small_coffee.size:
            assert not np.array_equal(_rgb_array(decoded), _rgb_array(small_coffee)), (kind, level)
        else:
            assert decoded.size != small_coffee.size


# --------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_gives_identical_bytes(kind, astronaut):
    for level in LEVELS:
        first = make_variant(astronaut, kind, np.random.default_rng(42), level)
        second = make_variant(astronaut, kind, np.random.default_rng(42), level)
        assert first.data == second.data
        assert first.params == second.params
        assert first.sha256 == second.sha256


@pytest.mark.parametrize("kind", KINDS)
def test_other_seeds_give_other_params_and_bytes(kind, astronaut):
    variants = [make_variant(astronaut, kind, np.random.default_rng(s), "strong") for s in range(6)]
    data_by_params: dict[str, set[bytes]] = {}
    for variant in variants:
        key = json.dumps(variant.params, sort_keys=True)
        data_by_params.setdefault(key, set()).add(variant.data)
    # The params say everything: equal params, equal bytes; other params, other bytes.
    assert all(len(datas) == 1 for datas in data_by_params.values())
    assert len({v.data for v in variants}) == len(data_by_params)
    if kind in ("hflip", "grayscale"):
        assert len(data_by_params) == 1  # nothing to draw: a mirror is a mirror
    elif kind in ("rotate_90", "jpeg_quality", "webp", "png_reencode", "pixelate"):
        assert len(data_by_params) >= 2  # a few whole-number choices may repeat in 6 draws
    else:
        assert len(data_by_params) == len(variants)


def test_same_seed_on_other_image_gives_other_bytes(astronaut, chelsea):
    a = make_variant(astronaut, "crop_center", np.random.default_rng(0))
    b = make_variant(chelsea, "crop_center", np.random.default_rng(0))
    assert a.params["area"] == b.params["area"]
    assert a.data != b.data


def test_webp_encoding_is_byte_stable_over_repeats(coffee):
    rng_state = 5
    datas = {make_variant(coffee, "webp", np.random.default_rng(rng_state)).data for _ in range(4)}
    assert len(datas) == 1


# --------------------------------------------------------------------------- strength order


@pytest.mark.parametrize("kind", ["crop_center", "crop_random"])
def test_strong_crops_remove_more_area_than_light(kind, small_coffee):
    coffee = small_coffee
    area = coffee.width * coffee.height
    kept = {}
    for level in LEVELS:
        fractions = []
        for seed in range(5):
            decoded = make_variant(coffee, kind, np.random.default_rng(seed), level).decode()
            fractions.append(decoded.width * decoded.height / area)
        kept[level] = fractions
    assert min(kept["light"]) > max(kept["medium"]) > 0
    assert min(kept["medium"]) > max(kept["strong"]) > 0
    # The recorded area is the area actually kept, to rounding of the box to whole pixels.
    variant = make_variant(coffee, kind, np.random.default_rng(0), "medium")
    left, top, right, bottom = variant.params["box"]
    assert (right - left) * (bottom - top) / area == pytest.approx(variant.params["area"], abs=0.01)


def test_crop_levels_bracket_the_90_70_50_percent_copydays_areas(coffee):
    small = coffee.resize((120, 80))
    for level, target in zip(LEVELS, (0.9, 0.7, 0.5)):
        areas = [
            make_variant(small, "crop_center", np.random.default_rng(s), level).params["area"]
            for s in range(20)
        ]
        assert abs(statistics.mean(areas) - target) < 0.05


@pytest.mark.parametrize(
    "kind",
    ["jpeg_quality", "webp", "blur", "noise", "brightness", "contrast", "gamma", "saturation",
     "hue", "pixelate", "perspective", "watermark"],
)  # fmt: skip
def test_stronger_levels_move_pixels_further(kind):
    astronaut = Image.fromarray(skdata.astronaut())  # full 512 x 512: whole-pixel params need room
    distance = {}
    for level in LEVELS:
        decoded = [
            make_variant(astronaut, kind, np.random.default_rng(seed), level).decode()
            for seed in range(3)
        ]
        distance[level] = statistics.median(_mean_abs_difference(d, astronaut) for d in decoded)
    assert distance["light"] < distance["medium"] < distance["strong"], distance


def test_lower_jpeg_quality_means_fewer_bytes(coffee):
    sizes = {
        level: len(make_variant(coffee, "jpeg_quality", np.random.default_rng(0), level).data)
        for level in LEVELS
    }
    assert sizes["light"] > sizes["medium"] > sizes["strong"]
    strong = make_variant(coffee, "jpeg_quality", np.random.default_rng(0), "strong")
    assert 10 <= strong.params["quality"] <= 35


# --------------------------------------------------------------------------- single edits


def test_noise_has_the_recorded_sigma():
    grey = Image.new("RGB", (400, 300), (128, 128, 128))
    variant = make_variant(grey, "noise", np.random.default_rng(11), "medium")
    residual = np.asarray(variant.decode(), dtype=np.float64) - 128.0
    sigma = variant.params["sigma"]
    assert abs(residual.mean()) < 0.05
    # Rounding to whole grey levels adds 1/12 to the variance.
    assert residual.std() == pytest.approx(np.sqrt(sigma**2 + 1 / 12), rel=0.02)


def test_hue_rotation_keeps_luma(coffee):
    variant = make_variant(coffee, "hue", np.random.default_rng(2), "strong")
    luma = np.array([0.213, 0.715, 0.072])
    before = (np.asarray(coffee, dtype=np.float64) @ luma).mean()
    after = (np.asarray(variant.decode(), dtype=np.float64) @ luma).mean()
    assert abs(variant.params["degrees"]) >= 45
    assert abs(after - before) < 3.0


def test_grayscale_is_a_one_channel_file(astronaut):
    decoded = make_variant(astronaut, "grayscale", np.random.default_rng(0)).decode()
    assert decoded.mode == "L"
    assert np.array_equal(np.asarray(decoded), np.asarray(astronaut.convert("L")))


def test_hflip_is_an_exact_mirror(chelsea):
    decoded = make_variant(chelsea, "hflip", np.random.default_rng(0)).decode()
    assert np.array_equal(np.asarray(decoded), np.asarray(chelsea)[:, ::-1])


def test_pad_border_keeps_the_picture_and_adds_solid_borders(chelsea):
    variant = make_variant(chelsea, "pad_border", np.random.default_rng(4), "strong")
    left, top, right, bottom = variant.params["left_top_right_bottom"]
    decoded = np.asarray(variant.decode())
    inner = decoded[top : top + chelsea.height, left : left + chelsea.width]
    assert np.array_equal(inner, np.asarray(chelsea))
    assert decoded.shape[:2] == (chelsea.height + top + bottom, chelsea.width + left + right)
    if left:
        assert np.all(decoded[:, :left] == variant.params["colour"])


def test_rotate_small_crop_mode_has_no_fill_pixels():
    flat = Image.new("RGB", (400, 300), (200, 180, 160))
    crops = 0
    for seed in range(12):
        variant = make_variant(flat, "rotate_small", np.random.default_rng(seed), "strong")
        if variant.params["mode"] != "crop":
            continue
        decoded = np.asarray(variant.decode(), dtype=np.int16)
        assert np.abs(decoded - [200, 180, 160]).max() <= 1  # no fill colour anywhere
        assert decoded.shape[1] / decoded.shape[0] == pytest.approx(400 / 300, abs=0.02)
        crops += 1
    assert crops >= 3


def test_perspective_coefficients_map_output_corners_to_input_corners():
    output = np.array([[10.0, 5.0], [190.0, 12.0], [180.0, 140.0], [4.0, 150.0]])
    source = np.array([[0.0, 0.0], [200.0, 0.0], [200.0, 150.0], [0.0, 150.0]])
    a, b, c, d, e, f, g, h = perspective_coefficients(output, source)
    for (x, y), (u, v) in zip(output, source):
        denominator = g * x + h * y + 1
        assert (a * x + b * y + c) / denominator == pytest.approx(u, abs=1e-9)
        assert (d * x + e * y + f) / denominator == pytest.approx(v, abs=1e-9)


@pytest.mark.parametrize("row_filter", ["up", "sub"])
@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_encode_png_is_lossless(row_filter, mode, coffee):
    image = coffee.convert(mode)
    data = encode_png(image, row_filter=row_filter)
    decoded = Image.open(io.BytesIO(data))
    assert decoded.format == "PNG" and decoded.mode == mode
    assert np.array_equal(np.asarray(decoded), np.asarray(image))
    assert encode_png(image, row_filter=row_filter) == data


@settings(max_examples=40, deadline=None)
@given(
    width=st.integers(16, 96),
    height=st.integers(16, 96),
    kind=st.sampled_from(KINDS),
    level=st.sampled_from(LEVELS),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_small_image_any_kind_gives_a_decodable_variant(width, height, kind, level, seed):
    pixels = np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    variant = make_variant(Image.fromarray(pixels), kind, np.random.default_rng(seed), level)
    decoded = variant.decode()
    assert decoded.width >= 1 and decoded.height >= 1
    json.dumps(variant.params)


# --------------------------------------------------------------------------- chains


def test_chain_records_its_steps_in_order(astronaut):
    for seed in range(8):
        variant = make_chain(astronaut, np.random.default_rng(seed), "medium")
        assert variant.kind.startswith("chain:")
        step_kinds = [step["kind"] for step in variant.params["steps"]]
        assert variant.kind == "chain:" + "+".join(step_kinds)
        assert 2 <= len(step_kinds) <= 3
        assert len(set(step_kinds)) == len(step_kinds)
        assert set(step_kinds) <= set(kinds_for_level("medium"))
        assert variant.params["level"] == "medium"
        assert json.loads(json.dumps(variant.params)) == variant.params
        encodings = [k for k in step_kinds if k in ENCODING_KINDS]
        assert len(encodings) <= 1
        if encodings:
            assert step_kinds[-1] == encodings[0]
        expected_ext = {"jpeg_quality": "jpg", "webp": "webp"}.get(step_kinds[-1], "png")
        assert variant.ext == expected_ext
        assert Image.open(io.BytesIO(variant.data)).format == FORMAT_OF_EXT[variant.ext]


def test_chain_is_deterministic_and_seed_dependent(chelsea):
    first = make_chain(chelsea, np.random.default_rng(9), "strong", length=3)
    again = make_chain(chelsea, np.random.default_rng(9), "strong", length=3)
    other = make_chain(chelsea, np.random.default_rng(10), "strong", length=3)
    assert first.data == again.data and first.params == again.params
    assert first.data != other.data
    assert len(first.params["steps"]) == 3


def _replay(image: Image.Image, steps: list[dict]) -> Image.Image:
    """Redo recorded steps with plain Pillow, for the kinds whose params pin them exactly."""
    transpose = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180,
                 270: Image.Transpose.ROTATE_270}  # fmt: skip
    for step in steps:
        kind, params = step["kind"], step["params"]
        if kind == "jpeg_quality":
            break  # the caller saves it
        image = image.convert("RGB")
        if kind in ("crop_center", "crop_random"):
            image = image.crop(tuple(params["box"]))
        elif kind == "hflip":
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        elif kind == "rotate_90":
            image = image.transpose(transpose[params["angle"]])
        elif kind == "grayscale":
            image = image.convert("L")
        elif kind == "pad_border":
            left, top, right, bottom = params["left_top_right_bottom"]
            padded = Image.new("RGB", (image.width + left + right, image.height + top + bottom),
                               tuple(params["colour"]))  # fmt: skip
            padded.paste(image, (left, top))
            image = padded
        else:
            raise AssertionError(kind)
    return image


def test_chain_applies_the_steps_it_records(chelsea):
    replayable = {"crop_center", "crop_random", "hflip", "rotate_90", "grayscale", "pad_border",
                  "jpeg_quality"}  # fmt: skip
    small = chelsea.resize((150, 100))
    checked = 0
    for seed in range(300):
        variant = make_chain(small, np.random.default_rng(seed), "medium", length=2)
        steps = variant.params["steps"]
        if not {step["kind"] for step in steps} <= replayable:
            continue
        expected_image = _replay(small, steps)
        if steps[-1]["kind"] == "jpeg_quality":
            buffer = io.BytesIO()
            quality = steps[-1]["params"]["quality"]
            expected_image.save(buffer, "JPEG", quality=quality, subsampling="4:2:0")
            assert variant.data == buffer.getvalue(), variant.kind
        else:
            assert variant.data == encode_png(expected_image), variant.kind
        checked += 1
        if checked == 8:
            break
    assert checked == 8


def test_chain_length_is_validated(chelsea):
    with pytest.raises(ValueError, match="length"):
        make_chain(chelsea, np.random.default_rng(0), "light", length=1)


# --------------------------------------------------------------------------- contact sheet


def test_contact_sheet_writes_a_png_with_one_row_per_pair(tmp_path, astronaut, chelsea):
    rows = []
    for kind in ("crop_center", "grayscale", "screenshot"):
        variant = make_variant(chelsea, kind, np.random.default_rng(0), "strong")
        rows.append((kind, chelsea, variant.decode(), "pHash d=7\nCLIP 0.931"))
    path = contact_sheet(rows, tmp_path / "sheets" / "three.png", thumb=96)
    assert path.exists()
    sheet = Image.open(path)
    assert sheet.format == "PNG"
    one = contact_sheet(rows[:1], tmp_path / "one.png", thumb=96)
    extra_height = Image.open(path).height - Image.open(one).height
    assert extra_height > 0 and extra_height % 2 == 0  # two more rows of equal height
    # The thumbnails are really drawn: the sheet is far from a flat background.
    assert np.asarray(sheet.convert("L")).std() > 20


def test_contact_sheet_with_no_rows_is_a_header(tmp_path):
    path = contact_sheet([], tmp_path / "empty.png")
    assert Image.open(path).format == "PNG"
