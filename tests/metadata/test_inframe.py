"""Cutting in-frame user data exactly: MPEG-4 Part 2 user data, Motion JPEG APPn/COM segments."""

from __future__ import annotations

import pytest

from redactd.metadata.inframe import FrameFilter, jpeg_cut, mpeg4_cut, sei_payload_types


def segment(marker: int, body: bytes) -> bytes:
    return bytes([0xFF, marker]) + (len(body) + 2).to_bytes(2, "big") + body


SOS = segment(0xDA, b"\x01\x01\x00\x00\x3f\x00")
SCAN = b"\x12\xff\x00\x34\xff\xd0\x56"  # entropy-coded data with a stuffed FF 00 and a restart marker
DQT = segment(0xDB, b"\x00" + bytes(64))
JFIF_THUMB = b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x02\x02" + bytes(12)  # a 2x2 RGB thumbnail


def picture(*segments: bytes) -> bytes:
    return b"\xff\xd8" + b"".join(segments) + SOS + SCAN + b"\xff\xd9"


class TestJpegCut:
    def test_exif_xmp_icc_and_comments_are_cut_and_decoding_segments_kept(self) -> None:
        frame = picture(segment(0xE1, b"Exif\x00\x00CAMERA"), segment(0xE1, b"http://ns.adobe.com/xap/1.0/\x00X"),
                        segment(0xE2, b"ICC_PROFILE\x00Y"), segment(0xFE, b"a comment"), DQT,
                        segment(0xEE, b"Adobe\x00\x64\x00\x00\x00\x00\x01"))
        cleaned, kinds = jpeg_cut(frame)
        assert cleaned == picture(DQT, segment(0xEE, b"Adobe\x00\x64\x00\x00\x00\x00\x01"))
        assert kinds == {"APP1 (Exif)": 1, "APP1 (http://ns.adobe.com/xap/1.0/)": 1, "APP2 (ICC_PROFILE)": 1,
                         "COM comment": 1}

    def test_a_jfif_thumbnail_is_dropped_but_the_density_kept(self) -> None:
        cleaned, kinds = jpeg_cut(picture(segment(0xE0, JFIF_THUMB), DQT))
        assert cleaned == picture(segment(0xE0, JFIF_THUMB[:12] + b"\x00\x00"), DQT)
        assert kinds == {"APP0 (JFIF thumbnail)": 1}

    def test_both_fields_of_an_interlaced_frame_are_cleaned_and_trailing_bytes_cut(self) -> None:
        field = picture(segment(0xE0, b"AVI1\x00\x01"), segment(0xE1, b"Exif\x00\x00X"), DQT)
        cleaned, kinds = jpeg_cut(field + field + b"SERIAL123")
        kept = picture(segment(0xE0, b"AVI1\x00\x01"), DQT)
        assert cleaned == kept + kept
        assert kinds == {"APP1 (Exif)": 2, "bytes after the end of the picture": 1}

    def test_a_clean_frame_is_returned_as_it_is(self) -> None:
        frame = picture(DQT) + b"\x00\x00"
        assert jpeg_cut(frame) == (frame, {})

    def test_a_frame_that_is_not_jpeg_cannot_be_checked(self) -> None:
        with pytest.raises(ValueError, match="start-of-image"):
            jpeg_cut(b"\x00\x00\x01\xb6garbage")
        assert FrameFilter("mjpeg", b"").kinds(b"not a jpeg") == {"unparsable frame (cannot be checked)": 1}


class TestMpeg4Cut:
    VOL = b"\x00\x00\x01\xb0\x01\x00\x00\x01\xb5\x09\x00\x00\x01\x00\x00\x00\x01\x20\x00\x84"

    def test_camera_user_data_is_cut_wherever_it_sits(self) -> None:
        data = self.VOL + b"\x00\x00\x01\xb2CAMERA SN 1234" + b"\x00\x00\x01\xb6\x10\x20\x30"
        cleaned, kinds = mpeg4_cut(data)
        assert cleaned == self.VOL + b"\x00\x00\x01\xb6\x10\x20\x30"
        assert kinds == {"user data (00 00 01 B2)": 1}

    @pytest.mark.parametrize("tag", [b"XviD0069", b"DivX503b1393p", b"Lavc59.37.100"])
    def test_a_bare_encoder_build_tag_is_kept_for_the_decoder(self, tag: bytes) -> None:
        data = self.VOL + b"\x00\x00\x01\xb2" + tag + b"\x00\x00\x01\xb6\x10"
        assert mpeg4_cut(data) == (data, {})

    def test_a_build_tag_with_more_after_it_is_cut(self) -> None:
        data = self.VOL + b"\x00\x00\x01\xb2XviD0069 owner=alice" + b"\x00\x00\x01\xb6\x10"
        assert mpeg4_cut(data)[0] == self.VOL + b"\x00\x00\x01\xb6\x10"


class TestSeiPayloadTypes:
    def test_several_messages_in_one_h264_sei_unit(self) -> None:
        unit = b"\x06" + b"\x05\x02ab" + b"\x06\x01\x00" + b"\x80"
        assert sei_payload_types("h264", unit) == [5, 6]
