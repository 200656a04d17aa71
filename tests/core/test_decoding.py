"""Decoding what people upload: formats, modes, orientation, and every refusal with its error code."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from inference import InvalidImage, Limits, decode_image, sniff_format

from .images import encode, jpeg_with_header_size, png_with_header_size, png_zlib_bomb, solid, with_exif_orientation

SIZE = (32, 32)
RED = (220, 40, 20)


def decode(data: bytes, limits: Limits | None = None) -> np.ndarray:
    return decode_image(data, SIZE, limits)


def assert_colour(array: np.ndarray, expected, tolerance=12):
    assert array.shape == (SIZE[1], SIZE[0], 3) and array.dtype == np.uint8
    mean = array.reshape(-1, 3).mean(axis=0)
    assert np.all(np.abs(mean - np.array(expected)) <= tolerance), (mean, expected)


@pytest.mark.parametrize(
    "fmt, options",
    [
        ("JPEG", {"quality": 95}),
        ("JPEG", {"quality": 95, "progressive": True}),
        ("PNG", {}),
        ("WEBP", {"quality": 95}),
        ("WEBP", {"lossless": True}),
        ("GIF", {}),
        ("BMP", {}),
    ],
)
def test_decodes_every_supported_format(fmt, options):
    assert_colour(decode(encode(solid(RED), fmt, **options)), RED, tolerance=16)


def test_cmyk_jpeg_converts_to_the_right_rgb():
    cmyk = Image.new("CMYK", (40, 40), (0, 200, 230, 20))  # a strong red-orange in ink
    expected = np.asarray(cmyk.convert("RGB")).reshape(-1, 3).mean(axis=0)
    assert_colour(decode(encode(cmyk, "JPEG", quality=95)), expected, tolerance=16)


@pytest.mark.parametrize("mode, value", [("L", 128), ("1", 1), ("P", None), ("LA", (128, 255)), ("RGBA", (*RED, 255))])
def test_any_mode_becomes_rgb(mode, value):
    image = solid(RED).convert("P") if mode == "P" else Image.new(mode, (40, 30), value)
    assert decode(encode(image, "PNG")).shape == (32, 32, 3)


def test_sixteen_bit_grey_png_keeps_its_brightness():
    grey16 = Image.fromarray(np.full((30, 30), 32768, dtype=np.uint16))  # mid grey in 16 bits
    assert grey16.mode.startswith("I")
    assert_colour(decode(encode(grey16, "PNG")), (128, 128, 128), tolerance=3)


def test_transparent_pixels_are_composited_on_white_not_black():
    transparent = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    assert_colour(decode(encode(transparent, "PNG")), (255, 255, 255), tolerance=1)
    half = Image.new("RGBA", (40, 40), (*RED, 128))
    expected = [round(c * 128 / 255 + 255 * (1 - 128 / 255)) for c in RED]
    assert_colour(decode(encode(half, "PNG")), expected, tolerance=3)


def test_palette_transparency_is_composited_too():
    image = Image.new("P", (40, 40), 0)
    image.putpalette([0, 0, 0] + [255, 0, 0] * 255)
    assert_colour(decode(encode(image, "PNG", transparency=0)), (255, 255, 255), tolerance=1)


def test_gif_first_frame_is_used():
    frames = [solid(RED, (40, 40)), solid((0, 0, 255), (40, 40))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    assert_colour(decode(data), RED, tolerance=24)


def test_exif_orientation_is_applied():
    # Left half red, right half blue; orientation 6 means "rotate 90 degrees clockwise to display".
    image = Image.new("RGB", (64, 32), (0, 0, 255))
    image.paste(RED, (0, 0, 32, 32))
    shown = decode(with_exif_orientation(image, 6))
    top, bottom = shown[:12].reshape(-1, 3).mean(0), shown[-12:].reshape(-1, 3).mean(0)
    assert top[0] > 150 and top[2] < 100, "after rotation the red half is on top"
    assert bottom[2] > 150 and bottom[0] < 100


def peak_memory_growth(data: bytes, size=(128, 128)) -> tuple[int, str]:
    """Decode ``data`` in a fresh process; return its peak RSS growth in bytes and the outcome."""
    script = (
        "import resource, sys; from inference import decode_image, InvalidImage; data = sys.stdin.buffer.read();"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n    decode_image(data, %r); outcome = 'ok'\n"
        "except InvalidImage as e:\n    outcome = e.code\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024, outcome)" % (size,)
    )
    done = subprocess.run([sys.executable, "-c", script], input=data, capture_output=True, check=True, timeout=60)
    growth, outcome = done.stdout.split()
    return int(growth), outcome.decode()


def test_large_jpeg_is_decoded_through_dct_scaling_fast_and_small():
    big = Image.linear_gradient("L").resize((4000, 3000)).convert("RGB")
    data = encode(big, "JPEG", quality=90)
    started = time.perf_counter()
    decode_image(data, (128, 128))
    assert time.perf_counter() - started < 2.0
    growth, outcome = peak_memory_growth(data)
    # A full decode holds 36 MB of pixels; DCT scaling to 1/8 holds about 0.6 MB.
    assert outcome == "ok" and growth < 12_000_000, f"peak grew {growth:,} bytes: the JPEG was not draft-decoded"


def test_empty_file():
    with pytest.raises(InvalidImage) as error:
        decode(b"")
    assert error.value.code == "empty_file"


def test_too_many_bytes():
    data = encode(solid(), "PNG")
    with pytest.raises(InvalidImage) as error:
        decode(data, Limits(max_bytes=len(data) - 1))
    assert error.value.code == "too_large"
    assert f"{len(data) - 1:,}" in error.value.message


@pytest.mark.parametrize("make", [lambda: png_with_header_size(100_000, 100_000), lambda: jpeg_with_header_size(60_000, 60_000)])
def test_forged_huge_headers_fail_fast_in_bounded_memory(make):
    started = time.perf_counter()
    with pytest.raises(InvalidImage) as error:
        decode(make())
    assert time.perf_counter() - started < 0.5
    assert error.value.code == "too_many_pixels"
    growth, outcome = peak_memory_growth(make())
    assert outcome == "too_many_pixels" and growth < 12_000_000


def test_pixel_limit_is_a_setting():
    data = encode(solid(size=(100, 100)), "PNG")
    with pytest.raises(InvalidImage) as error:
        decode(data, Limits(max_pixels=9_999))
    assert error.value.code == "too_many_pixels"
    assert decode(data, Limits(max_pixels=10_000)).shape == (32, 32, 3)


def test_decompression_bomb_within_header_limit_is_refused_before_inflating():
    data = png_zlib_bomb(8000)  # 64 MP of black in a few tens of kB
    assert len(data) < 200_000
    with pytest.raises(InvalidImage) as error:
        decode(data)
    assert error.value.code == "too_many_pixels"


def test_forged_header_with_missing_pixel_data_is_corrupt():
    with pytest.raises(InvalidImage) as error:
        decode(png_with_header_size(2000, 2000))
    assert error.value.code == "corrupt_image"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "BMP"])
def test_truncated_files_are_corrupt(fmt):
    noisy = Image.effect_noise((200, 200), 80).convert("RGB")
    data = encode(noisy, fmt)
    with pytest.raises(InvalidImage) as error:
        decode(data[: len(data) // 2])
    assert error.value.code == "corrupt_image"


def test_garbage_after_a_jpeg_signature_is_corrupt_not_unsupported():
    with pytest.raises(InvalidImage) as error:
        decode(b"\xff\xd8\xff" + b"\x00garbage" * 50)
    assert error.value.code == "corrupt_image"


@pytest.mark.parametrize(
    "data, named",
    [
        (b"hello, this is a text file\n", None),
        (b"%PDF-1.7\n...", "PDF"),
        (b"II*\x00" + b"\x00" * 64, "TIFF"),
        (b"\x00\x00\x00\x18ftypheic" + b"\x00" * 64, "HEIC"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'></svg>", None),
    ],
)
def test_non_images_are_unsupported_with_a_helpful_message(data, named):
    with pytest.raises(InvalidImage) as error:
        decode(data)
    assert error.value.code == "unsupported_format"
    assert "JPEG, PNG, WebP, GIF or BMP" in error.value.message
    if named:
        assert named in error.value.message


def test_sniff_format():
    assert sniff_format(encode(solid(), "WEBP")) == "WEBP"
    assert sniff_format(encode(solid(), "PNG")) == "PNG"
    assert sniff_format(b"text") is None


def test_random_bytes_never_raise_anything_but_invalid_image():
    rng = np.random.default_rng(0)
    valid = encode(Image.effect_noise((64, 64), 60).convert("RGB"), "JPEG")
    for i in range(200):
        data = bytearray(valid)
        for pos in rng.integers(0, len(data), size=8):
            data[pos] = rng.integers(0, 256)
        try:
            decode(bytes(data))
        except InvalidImage as error:
            assert error.code in {"corrupt_image", "unsupported_format", "too_many_pixels"}
