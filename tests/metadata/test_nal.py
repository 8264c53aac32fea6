"""NAL framing detection: length-prefixed packets whose length looks like a start code."""

from __future__ import annotations

from redactd.metadata.nal import PacketFilter

AVCC = bytes([1, 0x64, 0, 0x1F, 0xFF, 0xE0, 0])  # avcC header: 4-byte NAL lengths


def length_prefixed(*nals: bytes) -> bytes:
    return b"".join(len(n).to_bytes(4, "big") + n for n in nals)


class TestPacketFilter:
    def test_a_nal_length_of_256_to_511_is_not_mistaken_for_a_start_code(self) -> None:
        # 262 = 00 00 01 06: read as Annex B, the length's last byte looked like an SEI header.
        slice_nal = bytes([0x41]) + bytes(261)
        packet = length_prefixed(slice_nal)
        assert packet[:4] == b"\x00\x00\x01\x06"
        pf = PacketFilter("h264", AVCC)
        assert pf.count(packet) == 0
        assert pf.clean(memoryview(packet))[0] == packet

    def test_sei_in_a_length_prefixed_packet_is_still_cut(self) -> None:
        sei, slice_nal = bytes([0x06, 0x05, 0x01, 0x80]), bytes([0x41]) + bytes(300)
        pf = PacketFilter("h264", AVCC)
        cleaned, cut = pf.clean(memoryview(length_prefixed(sei, slice_nal)))
        assert (cut, bytes(cleaned)) == (1, length_prefixed(slice_nal))

    def test_annex_b_packets_are_still_split_on_start_codes(self) -> None:
        packet = b"\x00\x00\x00\x01" + bytes([0x06, 0x05, 0x80]) + b"\x00\x00\x00\x01" + bytes([0x65, 1, 2, 3])
        assert PacketFilter("h264", AVCC).count(packet) == 1
