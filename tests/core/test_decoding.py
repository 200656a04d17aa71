"""Decoding what people upload: formats, modes, orientation, and every refusal with its error code."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from inference import InvalidImage, Limits, decode_image, sniff_format
from inference.decode_memory import jpeg_coefficient_bytes, raster_bytes
from inference.jpeg_scans import jpeg_layout

from .images import (
    PILLOW_METADATA_CAP,
    SIDE_40MP,
    encode,
    exif_with_long_orientation,
    gif_comment,
    gif_with_before_first_frame,
    grey16_png,
    jpeg_with_before_first_scan,
    jpeg_with_header_size,
    lossless_webp,
    palette_gif,
    png_chunk_flood,
    png_with_compressed_metadata,
    png_with_header_size,
    png_zlib_bomb,
    progressive_scan_bomb,
    rgba_png,
    rle8_bmp,
    solid,
    with_exif_orientation,
)

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


@pytest.mark.parametrize("after_pixels", [False, True])
def test_transparency_longer_than_the_palette_is_cut_to_it_as_libpng_does(after_pixels):
    """Pillow keeps a tRNS naming 300 entries of a 256-entry palette and then refuses to convert the image; the
    ValueError used to escape decode_image."""
    from .images import png_chunk

    palette = encode(Image.new("P", SIZE, 1), "PNG")  # Pillow's palette: entry 1 is (1, 1, 1)
    at = palette.index(b"IEND") - 4 if after_pixels else palette.index(b"IDAT") - 4
    too_long = palette[:at] + png_chunk(b"tRNS", b"\xff" * 300) + palette[at:]
    assert_colour(decode(too_long), (1, 1, 1), tolerance=2)
    index_past_the_palette = palette[:at] + png_chunk(b"tRNS", b"\xff" * 300 + b"\x00") + palette[at:]
    assert_colour(decode(index_past_the_palette), (1, 1, 1), tolerance=2)


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


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_orientation_is_read_from_ordinary_exif_and_huge_exif_is_not_read(fmt):
    """Pillow decodes every value of the orientation tag in Python: 20 MB of EXIF in a PNG or WebP took 11 s and
    800 MB. EXIF over 256 kB is not read for the orientation; the image is classified as stored."""
    image = Image.new("RGB", (64, 32), (0, 0, 255))
    image.paste(RED, (0, 0, 32, 32))
    shown = decode(with_exif_orientation(image, 6, fmt))
    assert shown[:12].reshape(-1, 3).mean(0)[0] > 150, "small EXIF: rotated, the red half on top"
    huge = encode(image, fmt, exif=exif_with_long_orientation(2_000_000), **({"lossless": True} if fmt == "WEBP" else {}))
    assert len(huge) > 16_000_000
    started = time.process_time()
    stored = decode(huge)
    assert time.process_time() - started < 1
    assert stored[:, :12].reshape(-1, 3).mean(0)[0] > 150, "huge EXIF: as stored, the red half on the left"


_MEASURE_DECODING = """
import sys
from inference import InvalidImage, decode_image

def status_kb(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))

data = sys.stdin.buffer.read()
with open("/proc/self/clear_refs", "w") as clear_refs:
    clear_refs.write("5")  # VmHWM starts afresh: imports and reading the input do not count
before = status_kb("VmRSS")
try:
    decode_image(data, %r)
    outcome = "ok"
except InvalidImage as error:
    outcome = error.code
print((status_kb("VmHWM") - before) * 1024, outcome)
"""


def peak_memory_growth(data: bytes, size=(128, 128)) -> tuple[int, str]:
    """Decode ``data`` in a fresh process; return its peak RSS growth in bytes and the outcome."""
    done = subprocess.run([sys.executable, "-c", _MEASURE_DECODING % (size,)], input=data, capture_output=True, check=True, timeout=120)
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
            assert error.code in {"corrupt_image", "unsupported_format", "too_many_pixels", "too_complex"}


# Costly inputs within the limits: each is classified or refused in bounded time and memory.


def test_progressive_scan_bomb_is_refused_before_decoding():
    # 201 kB, 12 MP, the last scan repeated 5,000 times: libjpeg used to spend about a minute on it.
    data = progressive_scan_bomb(5000)
    with pytest.raises(InvalidImage) as error:
        decode_image(data, (128, 128))
    assert error.value.code == "too_complex"
    assert "more than 64 scans" in error.value.message


def test_scan_limit_is_a_setting_and_ordinary_progressive_jpegs_pass():
    ordinary = encode(solid(RED), "JPEG", progressive=True)
    scans = jpeg_layout(ordinary, 1000, 1000).scans
    assert 5 <= scans <= 20  # what libjpeg writes
    assert_colour(decode(ordinary, Limits(max_scans=scans)), RED, tolerance=16)
    with pytest.raises(InvalidImage) as error:
        decode(ordinary, Limits(max_scans=scans - 1))
    assert error.value.code == "too_complex"
    repeated = progressive_scan_bomb(scans, size=(64, 48))
    assert jpeg_layout(repeated, 1000, 1000).scans == 2 * scans


def test_jpeg_marker_flood_is_refused_before_pillow_walks_it():
    photo = encode(solid(RED), "JPEG")
    empty_comments = b"\xff\xfe\x00\x02" * 5000  # Pillow reads every segment in Python: millions take seconds
    with pytest.raises(InvalidImage) as error:
        decode(photo[:2] + empty_comments + photo[2:])
    assert error.value.code == "too_complex"


def test_damage_between_segments_hides_no_scans_or_segments():
    """Decoders step over bytes that are no marker, and over a length field under 2, and decode on: the count must
    too. One stray byte used to end the count, and the scan bomb behind it took 38 s to decode."""
    with pytest.raises(InvalidImage) as error:
        decode_image(jpeg_with_before_first_scan(progressive_scan_bomb(1000, size=(640, 480)), b"\x00"), (128, 128))
    assert error.value.code == "too_complex" and "more than 64 scans" in error.value.message
    photo = encode(solid(RED), "JPEG")
    after_app0 = 4 + int.from_bytes(photo[4:6], "big")
    empty_app0 = b"\xff\xe0\x00\x00"  # a length of 0: libjpeg and Pillow read on after the length field
    for damage in (b"\x00", empty_app0, b"\xff\x00"):
        flood = photo[:after_app0] + damage + b"\xff\xfe\x00\x02" * 2000 + photo[after_app0:]
        with pytest.raises(InvalidImage) as error:
            decode(flood)
        assert error.value.code == "too_complex" and "marker segments" in error.value.message, damage
    layout = jpeg_layout(jpeg_with_before_first_scan(encode(solid(RED), "JPEG", progressive=True), b"junk"), 1000, 1000)
    assert (layout.scans, layout.stray_bytes, layout.precision) == (jpeg_layout(encode(solid(RED), "JPEG", progressive=True),
                                                                                1000, 1000).scans, 4, 8)  # fmt: skip


def _segment(marker: int, body: bytes) -> bytes:
    return b"\xff" + bytes([marker]) + (len(body) + 2).to_bytes(2, "big") + body


def test_the_walk_reads_what_pillow_reads_before_the_first_scan():
    """Up to the first scan Pillow reads the file in Python: an EOI there does not stop it, and the markers it has no
    handler for (JPG, JPG0-JPG13) carry no length. Both used to hide a segment flood from the count (14 s, 734 MB)."""
    photo = encode(solid(RED), "JPEG")
    flood = b"\xff\xe0\x00\x02" * 2000
    behind_an_eoi = photo[:2] + b"\xff\xd9" + flood + photo[2:]
    behind_jpg0 = photo[:2] + b"\xff\xf0\xff\xff" + flood + photo[2:]  # JPG0, then fill: read as a length, it hid 64 kB
    for data in (behind_an_eoi, behind_jpg0):
        with pytest.raises(InvalidImage) as error:
            decode(data)
        assert error.value.code == "too_complex" and "marker segments" in error.value.message
    # After the first scan libjpeg reads, and an EOI ends the image: what follows is not counted.
    assert jpeg_layout(photo + flood, 64, 1000).segments == jpeg_layout(photo, 64, 1000).segments


def test_frame_headers_and_quantization_tables_are_bounded():
    """Pillow adds every frame header's components to one list (319 headers of 64 kB: 7 M entries, 638 MB) and parses
    every quantization table into a list (322 k tables: 2 s)."""
    photo = encode(solid(RED), "JPEG")
    frame = photo.index(b"\xff\xc0")
    extra_frame = _segment(0xC0, b"\x08\x00\x10\x00\x10\x03" + b"\x01\x11\x00" * 21_000)
    with pytest.raises(InvalidImage) as error:
        decode(photo[:frame] + extra_frame * 30 + photo[frame:])
    assert error.value.code == "corrupt_image" and "frame headers" in error.value.message
    tables = _segment(0xDB, bytes(65) * 1000)
    with pytest.raises(InvalidImage) as error:
        decode(photo[:2] + tables * 30 + photo[2:])
    assert error.value.code == "too_complex" and "quantization" in error.value.message
    layout = jpeg_layout(encode(solid(RED), "JPEG", progressive=True), 64, 1000)
    assert (layout.frame_headers, layout.precision) == (1, 8) and 1 <= layout.quantization_segments <= 4


def test_a_few_stray_bytes_decode_and_a_flood_of_them_is_refused_at_once():
    photo = encode(solid(RED), "JPEG")
    assert_colour(decode(jpeg_with_before_first_scan(photo, b"\x00" * 100)), RED, tolerance=16)  # libjpeg warns, decodes
    assert_colour(decode(jpeg_with_before_first_scan(photo, b"\xff" * 100)), RED, tolerance=16)  # fill bytes are legal
    # Pillow steps over each stray byte in Python: 20 MB of them took seconds before a pixel was decoded.
    for flood in (b"\x00" * 2_000_000, b"\xff" * 2_000_000, b"\x00\xff" * 1_000_000):
        started = time.process_time()
        with pytest.raises(InvalidImage) as error:
            decode(jpeg_with_before_first_scan(photo, flood))
        assert error.value.code == "corrupt_image" and "belong to no marker" in error.value.message
        assert time.process_time() - started < 1


@pytest.mark.parametrize("signature", [b"Exif\x00\x00", b"Photoshop 3.0\x00"])
def test_a_flood_of_metadata_segments_is_refused_before_pillow_joins_them(signature):
    """Pillow appends each Exif segment to the ones before (320 of 64 kB took 2.6 s) and parses Photoshop resources
    block by block, all in Python as the file opens."""
    marker = 0xE1 if signature.startswith(b"Exif") else 0xED
    segment = b"\xff" + bytes([marker]) + (65533 + 2).to_bytes(2, "big") + signature + b"\x00" * (65533 - len(signature))
    photo = encode(solid(RED), "JPEG")
    assert_colour(decode(photo[:2] + segment + photo[2:]), RED, tolerance=16)  # one, as cameras write
    started = time.process_time()
    with pytest.raises(InvalidImage) as error:
        decode(photo[:2] + segment * 300 + photo[2:])
    assert error.value.code == "too_complex" and "metadata segments" in error.value.message
    assert time.process_time() - started < 0.5


def test_a_jpeg_of_other_than_8_bit_samples_is_unsupported_not_corrupt():
    data = bytearray(encode(solid(RED), "JPEG"))
    frame = data.index(b"\xff\xc0")
    data[frame + 1], data[frame + 4] = 0xC1, 12  # extended sequential, 12-bit: valid, but not what Pillow reads
    with pytest.raises(InvalidImage) as error:
        decode(bytes(data))
    assert error.value.code == "unsupported_format" and "12-bit" in error.value.message


def test_png_chunk_flood_is_refused_before_pillow_walks_it():
    assert decode(png_chunk_flood(1000)).shape == (32, 32, 3)  # odd but harmless
    with pytest.raises(InvalidImage) as error:
        decode(png_chunk_flood(60_000))  # 720 kB here; 1.6 M of them (20 MB) took Pillow 15 s
    assert error.value.code == "too_complex"


@pytest.mark.parametrize("kind", [b"iCCP", b"zTXt", b"iTXt"])
@pytest.mark.parametrize("after_pixels", [False, True])
def test_a_flood_of_compressed_metadata_is_refused_before_pillow_inflates_it(kind, after_pixels):
    assert_colour(decode(png_with_compressed_metadata(1, kind, after_pixels)), (220, 40, 20))
    started = time.process_time()
    with pytest.raises(InvalidImage) as error:
        decode(png_with_compressed_metadata(2000, kind, after_pixels))  # 2 MB here; 20 MB took Pillow 20 s or more
    assert error.value.code == "too_complex" and "compressed metadata" in error.value.message
    assert time.process_time() - started < 1


@pytest.mark.parametrize("kind", [b"iCCP", b"zTXt", b"iTXt"])
@pytest.mark.parametrize("after_pixels", [False, True])
def test_one_metadata_chunk_that_inflates_past_pillow_s_cap_is_named_as_such(kind, after_pixels):
    """Not "header is damaged" or "image data is truncated": the pixels are sound, the metadata is a bomb."""
    with pytest.raises(InvalidImage) as error:
        decode(png_with_compressed_metadata(1, kind, after_pixels, inflates_to=PILLOW_METADATA_CAP + 1))
    assert error.value.code == "corrupt_image" and "metadata" in error.value.message and "1 MB" in error.value.message


def test_run_length_encoded_bmps_are_bounded_by_pixels_and_bytes():
    """Pillow decodes RLE BMPs in Python: a pixel at a time, and a run past a row's end is read on to the file's."""
    end_of_line, end_of_bitmap = b"\x00\x00", b"\x00\x01"
    small = rle8_bmp(4, 2, (b"\x04\xc8" + end_of_line) * 2 + end_of_bitmap)
    assert_colour(decode(small), (200, 200, 200))
    one_pixel_rows = rle8_bmp(8000, 5000, (b"\x01\x05" + end_of_line) * 5000 + end_of_bitmap)  # 21 kB: took 6 s
    long_overrun = rle8_bmp(100, 100, b"\x01\x05" * 1_500_000 + end_of_bitmap)  # 3 MB of runs past row 1
    for data in (one_pixel_rows, long_overrun):
        started = time.process_time()
        with pytest.raises(InvalidImage) as error:
            decode(data)
        assert error.value.code == "too_complex" and "run-length encoded (RLE8)" in error.value.message
        assert time.process_time() - started < 0.5


def test_gif_blocks_before_the_first_frame_are_bounded():
    """Pillow reads a GIF's extensions in Python and keeps each comment sub-block as an object of its own: 10 M 1-byte
    sub-blocks (20 MB) took a gigabyte; stray bytes between blocks it steps over one at a time."""
    assert decode(gif_with_before_first_frame(gif_comment(40, size=255))).shape == (32, 32, 3)  # a 10 kB comment
    floods = (gif_comment(30_000), b"\x21\xfe\x00" * 30_000, b"\x00" * 30_000)  # sub-blocks, empty comments, junk
    for flood in floods:
        started = time.process_time()
        with pytest.raises(InvalidImage) as error:
            decode(gif_with_before_first_frame(flood))
        assert error.value.code == "too_complex" and "before its first frame" in error.value.message
        assert time.process_time() - started < 0.5


def test_scan_count_skips_entropy_data_and_embedded_thumbnails():
    # An EXIF thumbnail is a whole JPEG inside an APP1 segment: its scan is not the photo's.
    thumbnail = encode(solid(size=(16, 16)), "JPEG")
    exif = Image.Exif()
    photo = encode(Image.effect_noise((64, 64), 80).convert("RGB"), "JPEG", exif=exif.tobytes() + thumbnail)
    assert jpeg_layout(photo, 100, 100).scans == 1
    assert jpeg_layout(b"\xff\xd8\xff\xda\x00\x08abc", 100, 100).scans == 1  # truncated: counts, never raises
    assert jpeg_layout(b"\xff\xd8\xff\xda\x00", 100, 100).scans == 0
    assert jpeg_layout(b"not a jpeg", 100, 100).scans == 0


def test_webp_larger_than_the_decode_budget_is_refused_before_decoding():
    # libwebp and Pillow hold about 16 bytes per pixel: a 40 MP WebP of 38 bytes used to take 650 MB.
    data = lossless_webp(SIDE_40MP)
    with pytest.raises(InvalidImage) as error:
        decode_image(data, (128, 128))
    assert error.value.code == "too_many_pixels"
    assert "WebP" in error.value.message and "16,777,216 pixels" in error.value.message


def test_progressive_jpeg_coefficients_count_against_the_decode_budget():
    # Baseline JPEGs decode scaled down; a progressive one keeps every coefficient until its last scan.
    image = Image.linear_gradient("L").resize((1024, 1024)).convert("RGB")
    limits = Limits(max_decode_bytes=1_000_000)
    assert decode(encode(image, "JPEG"), limits).shape == (32, 32, 3)
    with pytest.raises(InvalidImage) as error:
        decode(encode(image, "JPEG", progressive=True), limits)
    assert error.value.code == "too_many_pixels" and "MB" in error.value.message


def test_decode_memory_estimates():
    layer_420 = [(1, 2, 2, 0), (2, 1, 1, 1), (3, 1, 1, 1)]
    assert jpeg_coefficient_bytes((6324, 6324), layer_420) == (791 * 791 + 2 * 396 * 396) * 128  # ~120 MB
    assert raster_bytes("I;16", (100, 100)) == 20_000 and raster_bytes("RGB", (100, 100)) == 40_000


# Peak growth of a fresh process decoding each file (MB): the bound, then what it measured before and after
# the fix on the 2-core development machine. The decoded raster itself is 1, 2 or 4 bytes per pixel.
@pytest.mark.parametrize(
    "make, bound_mb",
    [
        (lambda: grey16_png(3162), 80),  # 10 MP 16-bit grey, raster 20 MB: 270 MB before (float64 copies), 48 after
        (lambda: rgba_png(3162), 100),  # 10 MP RGBA, raster 40 MB: 154 MB before (four full-size copies), 59 after
        (lambda: palette_gif(3162), 40),  # 10 MP palette, raster 10 MB: 52 MB before (full-size RGB), 26 after
    ],
    ids=["grey16-png", "rgba-png", "palette-gif"],
)
def test_large_images_are_converted_without_full_size_copies(make, bound_mb):
    growth, outcome = peak_memory_growth(make())
    assert outcome == "ok"
    assert growth < bound_mb * 2**20, f"peak grew {growth / 2**20:.0f} MB"


@pytest.mark.slow
@pytest.mark.parametrize(
    "make, bound_mb, outcome",
    [
        (grey16_png, 160, "ok"),  # raster 80 MB: 994 MB before, 133 after
        (rgba_png, 200, "ok"),  # raster 160 MB: 612 MB before, 173 after
        (palette_gif, 100, "ok"),  # raster 40 MB: 195 MB before, 55 after
        (lambda: progressive_scan_bomb(5000), 20, "too_complex"),  # about a minute of CPU before
    ],
    ids=["grey16-png", "rgba-png", "palette-gif", "scan-bomb"],
)
def test_costly_40_megapixel_inputs_decode_in_bounded_memory(make, bound_mb, outcome):
    growth, got = peak_memory_growth(make())
    assert got == outcome
    assert growth < bound_mb * 2**20, f"peak grew {growth / 2**20:.0f} MB"


def test_large_grey_gives_the_same_pixels_as_a_plain_conversion():
    values = (np.arange(2400 * 2000, dtype=np.uint32).reshape(2000, 2400) % 65536).astype(np.uint16)
    data = encode(Image.fromarray(values), "PNG")
    plain = Image.fromarray((values // 257).astype(np.uint8), "L").convert("RGB").resize(SIZE, Image.Resampling.BILINEAR)
    assert np.array_equal(decode(data), np.asarray(plain))


def test_large_transparent_images_are_reduced_close_to_a_plain_conversion():
    gradient = Image.linear_gradient("L").resize((2600, 2000))
    rgba = Image.merge("RGBA", (gradient, gradient.transpose(Image.Transpose.ROTATE_180), gradient.rotate(90), gradient))
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    background.alpha_composite(rgba)
    plain = np.asarray(background.convert("RGB").resize(SIZE, Image.Resampling.BILINEAR), dtype=int)
    assert np.abs(decode(encode(rgba, "PNG")) - plain).max() <= 4


def test_large_images_are_rotated_after_reduction():
    # Left half red, right half blue, transparent enough to take the reduced path; orientation 6 turns it upright.
    image = Image.new("RGBA", (3000, 1500), (0, 0, 255, 250))
    image.paste((*RED, 250), (0, 0, 1500, 1500))
    exif = Image.Exif()
    exif[0x0112] = 6
    shown = decode(encode(image, "PNG", exif=exif.tobytes()))
    top, bottom = shown[:12].reshape(-1, 3).mean(0), shown[-12:].reshape(-1, 3).mean(0)
    assert top[0] > 150 and top[2] < 100 and bottom[2] > 150 and bottom[0] < 100
