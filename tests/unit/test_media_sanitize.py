"""Tests for backend.media.sanitize: originals served to others lose metadata, not pixels."""

from __future__ import annotations

import io

import pytest
from PIL import Image, PngImagePlugin

from backend.media.errors import UnsupportedMedia
from backend.media.exif import orientation_tiff
from backend.media.jpeg_segments import strip_jpeg_metadata
from backend.media.png_chunks import strip_png_metadata
from backend.media.sanitize import sanitized_original
from backend.media.validate import ImageInfo, inspect_image
from backend.media.webp_chunks import strip_webp_metadata
from tests.unit.test_media_samples import (
    GPS_IFD,
    ORIENTATION,
    XMP_PACKET,
    encode,
    exif_with_gps,
    halves,
    jpeg,
    jpeg_segments,
    png_chunk,
    png_chunk_types,
    png_chunks,
    srgb_icc,
    webp,
    webp_chunks,
)

_APP1, _APP2, _APP13, _COM = 0xE1, 0xE2, 0xED, 0xFE
_SECRETS = (b"SecretCam", b"secret comment", b"secret-xmp", b"Photoshop 3.0", b"TRAILING")


def sanitize(data: bytes) -> tuple[bytes, ImageInfo]:
    """Validate ``data``, sanitise it, and check the result is a valid picture like it."""
    info = inspect_image(data)
    clean = sanitized_original(data, info)
    again = inspect_image(clean)
    assert (again.format, again.width, again.height) == (info.format, info.width, info.height)
    assert again.orientation == info.orientation
    return clean, info


def same_pixels(first: bytes, second: bytes) -> bool:
    """Return whether two files decode to identical pixels."""
    one, two = Image.open(io.BytesIO(first)), Image.open(io.BytesIO(second))
    return one.mode == two.mode and one.size == two.size and one.tobytes() == two.tobytes()


def assert_no_secrets(data: bytes) -> None:
    """Fail if any planted secret survived."""
    for secret in _SECRETS:
        assert secret not in data, secret


def with_segment_after_soi(data: bytes, marker: int, payload: bytes) -> bytes:
    """Return a JPEG with an extra marker segment right after SOI."""
    segment = bytes((0xFF, marker)) + (len(payload) + 2).to_bytes(2, "big") + payload
    return data[:2] + segment + data[2:]


# --- JPEG ------------------------------------------------------------------------------------


def test_jpeg_loses_metadata_but_keeps_pixels_icc_and_orientation() -> None:
    icc = srgb_icc()
    data = jpeg(
        (300, 200),
        exif=exif_with_gps(orientation=6),
        icc_profile=icc,
        comment=b"secret comment",
        xmp=XMP_PACKET,
    )
    data = with_segment_after_soi(data, _APP13, b"Photoshop 3.0\x00" + b"8BIM" * 8)
    data += b"TRAILING data after the end of the picture"

    clean, _ = sanitize(data)

    assert_no_secrets(clean)
    image = Image.open(io.BytesIO(clean))
    assert dict(image.getexif()) == {ORIENTATION: 6}
    assert image.getexif().get_ifd(GPS_IFD) == {}
    assert image.info["icc_profile"] == icc
    assert same_pixels(data, clean)
    assert clean.endswith(b"\xff\xd9")
    markers = [marker for marker, _ in jpeg_segments(clean)]
    assert markers.count(_APP1) == 1 and _COM not in markers and _APP13 not in markers


def test_jpeg_compressed_data_is_copied_not_reencoded() -> None:
    data = jpeg((120, 80), exif=exif_with_gps(), quality=70)

    clean, _ = sanitize(data)

    scan = data[data.index(b"\xff\xda") :]
    assert clean.endswith(scan)


def test_jpeg_without_orientation_gets_no_exif_at_all() -> None:
    data = jpeg((80, 60), exif=exif_with_gps())

    clean, info = sanitize(data)

    assert info.orientation == 1
    assert b"Exif\x00\x00" not in clean
    assert _APP1 not in [marker for marker, _ in jpeg_segments(clean)]


def test_progressive_jpeg_with_restart_markers_survives() -> None:
    data = jpeg(
        (160, 120), progressive=True, restart_marker_blocks=1, exif=exif_with_gps(), quality=90
    )

    clean, _ = sanitize(data)

    assert_no_secrets(clean)
    assert clean.count(b"\xff\xda") == data.count(b"\xff\xda") > 1
    assert same_pixels(data, clean)


def test_corrupt_scan_data_is_copied_so_the_pixels_stay_identical() -> None:
    # libjpeg resynchronises past a reserved code (FF 33) at the next restart marker; cutting
    # the scan there instead would lose the rest of it.
    data = jpeg((160, 120), progressive=True, restart_marker_blocks=1, quality=90)
    scan = data.index(b"\xff\xda")
    pixels = scan + 2 + int.from_bytes(data[scan + 2 : scan + 4], "big")
    corrupt = data[: pixels + 20] + b"\xff\x33" + data[pixels + 20 :]

    clean, _ = sanitize(corrupt)

    assert same_pixels(corrupt, clean)


@pytest.mark.parametrize(
    "junk",
    [
        pytest.param(b"\xff\xfe\x00\x0aTRAILING\xff\xd9", id="comment"),
        pytest.param(b"\xff\xe1\x00\x0aTRAILING\xff\xd9", id="app1"),
        pytest.param(b"\xff\xfe\x7f\xffTRAILING", id="segment-past-the-end"),
    ],
)
def test_segments_after_the_last_scan_are_dropped(junk: bytes) -> None:
    data = jpeg((80, 60))

    clean, _ = sanitize(data[:-2] + junk)  # replaces the end-of-image marker

    assert clean == data


def test_jfif_thumbnail_is_dropped() -> None:
    data = jpeg((80, 60))
    segments = jpeg_segments(data)
    assert segments[0][0] == 0xE0
    jfif = segments[0][1]
    thumbnail = b"\xaa\xbb\xcc" * 2
    with_thumbnail = jfif[:12] + b"\x02\x01" + thumbnail
    old_segment = b"\xff\xe0" + (len(jfif) + 2).to_bytes(2, "big") + jfif
    new_segment = b"\xff\xe0" + (len(with_thumbnail) + 2).to_bytes(2, "big") + with_thumbnail
    data = data.replace(old_segment, new_segment, 1)

    clean, _ = sanitize(data)

    assert jpeg_segments(clean)[0] == (0xE0, jfif[:12] + b"\x00\x00")
    assert thumbnail not in clean


def test_mpo_keeps_only_the_primary_picture() -> None:
    frames = [halves((64, 48)), halves((64, 48), "green", "white")]
    data = encode(frames[0], "MPO", save_all=True, append_images=frames[1:])

    clean, _ = sanitize(data)

    image = Image.open(io.BytesIO(clean))
    assert image.format == "JPEG"
    assert clean.count(b"\xff\xd8") == 1 and b"MPF\x00" not in clean
    assert image.tobytes() == Image.open(io.BytesIO(data)).tobytes()


def test_jpeg_with_broken_segment_length_is_refused() -> None:
    data = jpeg((40, 30))
    broken = data[:4] + b"\xff\xff" + data[6:]  # APP0 claims to run past the end of the file

    with pytest.raises(UnsupportedMedia):
        strip_jpeg_metadata(broken)


# --- PNG -------------------------------------------------------------------------------------


def png_with_metadata(image: Image.Image, orientation: int | None) -> bytes:
    """Return a PNG carrying text, XMP, EXIF with GPS, a timestamp and a private chunk."""
    text = PngImagePlugin.PngInfo()
    text.add_text("Author", "SecretCam owner")
    text.add_text("Comment", "secret comment", zip=True)
    text.add_itxt("XML:com.adobe.xmp", XMP_PACKET.decode())
    text.add(b"tIME", b"\x07\xe8\x01\x02\x03\x04\x05")
    text.add(b"prVt", b"TRAILING private chunk")
    return encode(
        image, "PNG", pnginfo=text, exif=exif_with_gps(orientation), icc_profile=srgb_icc()
    )


def test_png_keeps_only_chunks_that_define_the_picture() -> None:
    data = png_with_metadata(halves((120, 80)), orientation=6)

    clean, info = sanitize(data)

    assert info.orientation == 6
    assert_no_secrets(clean)
    assert png_chunk_types(clean) == [b"IHDR", b"iCCP", b"eXIf", b"IDAT", b"IEND"]
    assert dict(png_chunks(clean))[b"eXIf"] == orientation_tiff(6)
    image = Image.open(io.BytesIO(clean))
    image.load()
    assert not {"Author", "Comment", "XML:com.adobe.xmp"} & image.info.keys()
    assert dict(image.getexif()) == {ORIENTATION: 6}
    assert same_pixels(data, clean)


def test_png_without_orientation_gets_no_exif() -> None:
    data = png_with_metadata(halves((40, 30)), orientation=None)

    clean, _ = sanitize(data)

    assert b"eXIf" not in png_chunk_types(clean)


def test_sixteen_bit_png_pixel_data_is_untouched() -> None:
    data = png_with_metadata(Image.new("I;16", (50, 40), 40_000), orientation=None)

    clean, _ = sanitize(data)

    idat = [payload for kind, payload in png_chunks(data) if kind == b"IDAT"]
    assert [payload for kind, payload in png_chunks(clean) if kind == b"IDAT"] == idat
    assert Image.open(io.BytesIO(clean)).getpixel((0, 0)) == 40_000


def test_png_data_after_iend_is_dropped() -> None:
    data = encode(halves((40, 30)), "PNG") + png_chunk(b"tEXt", b"Comment\x00TRAILING")

    clean, _ = sanitize(data)

    assert clean == encode(halves((40, 30)), "PNG")


def test_png_without_signature_is_refused() -> None:
    with pytest.raises(UnsupportedMedia):
        strip_png_metadata(b"GIF89a" + b"\x00" * 40)


# --- WebP ------------------------------------------------------------------------------------


def test_webp_loses_exif_and_xmp_but_keeps_icc_and_orientation() -> None:
    icc = srgb_icc()
    data = webp((120, 80), exif=exif_with_gps(orientation=6), xmp=XMP_PACKET, icc_profile=icc)
    assert [kind for kind, _ in webp_chunks(data)] == [b"VP8X", b"ICCP", b"VP8 ", b"EXIF", b"XMP "]

    clean, _ = sanitize(data)

    assert_no_secrets(clean)
    chunks = webp_chunks(clean)
    assert [kind for kind, _ in chunks] == [b"VP8X", b"ICCP", b"VP8 ", b"EXIF"]
    assert chunks[0][1][0] == 0x20 | 0x08  # ICC and EXIF flags, XMP flag cleared
    assert chunks[3][1] == orientation_tiff(6)
    assert dict(chunks)[b"VP8 "] == dict(webp_chunks(data))[b"VP8 "]
    image = Image.open(io.BytesIO(clean))
    assert dict(image.getexif()) == {ORIENTATION: 6}
    assert image.info["icc_profile"] == icc
    assert same_pixels(data, clean)


def test_webp_with_alpha_keeps_its_alpha_chunk() -> None:
    cutout = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    cutout.paste((10, 200, 10, 255), (16, 16, 48, 48))
    data = encode(cutout, "WEBP", exif=exif_with_gps(), quality=80)

    clean, _ = sanitize(data)

    assert [kind for kind, _ in webp_chunks(clean)] == [b"VP8X", b"ALPH", b"VP8 "]
    assert webp_chunks(clean)[0][1][0] == 0x10  # alpha flag only
    assert same_pixels(data, clean)


def test_simple_webp_is_unchanged_and_trailing_data_dropped() -> None:
    data = webp((64, 48), lossless=True)

    clean, _ = sanitize(data + b"TRAILING")

    assert clean == data


def test_webp_with_chunk_running_past_the_end_is_refused() -> None:
    data = webp((64, 48))
    broken = data[:16] + (len(data) * 2).to_bytes(4, "little") + data[20:]

    with pytest.raises(UnsupportedMedia):
        strip_webp_metadata(broken)
