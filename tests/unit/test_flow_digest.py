"""Decoding the new-flow digest."""

import pytest
from finsy.proto import p4r

from controller.dataplane.flow_digest import FIELDS, NO_CACHE_SLOT, MalformedDigest, decode_digest_list
from controller.p4runtime.encoding import encode_int, flow_address


def digest_list(values: list[int]) -> p4r.DigestList:
    msg = p4r.DigestList(digest_id=7, list_id=1)
    data = msg.data.add()
    for v in values:
        data.struct.members.add(bitstring=encode_int(v, 128))
    return msg


def test_decodes_every_field_in_order():
    values = [flow_address("10.0.1.1"), flow_address("10.0.0.100"), 6, 40000, 80,
              1, 11, 1234, 99_000_000, 0x10, 250, 0x04]
    (flow,) = decode_digest_list(digest_list(values))
    assert [getattr(flow, f) for f in FIELDS] == values
    assert (str(flow.src_ip), str(flow.dst_ip)) == ("10.0.1.1", "10.0.0.100")
    assert flow.key == tuple(values[:5])
    assert flow.rtt_valid and not flow.is_retry and not flow.is_collision


def test_wrong_shape_is_a_clear_error():
    expected = r"digest 7 list 1: expected 12 \(BMv2\) or 10 \(TNA\) bitstring members, got 3"
    with pytest.raises(MalformedDigest, match=expected):
        decode_digest_list(digest_list([1, 2, 3]))


def test_decodes_the_tna_layout():
    """The TNA digest leaves out cache_slot and timestamp_us (48-byte learning quantum)."""
    values = [flow_address("10.0.1.1"), flow_address("10.0.0.100"), 6, 40000, 80,
              1, 11, 0x10, 250, 0x04]
    (flow,) = decode_digest_list(digest_list(values))
    assert flow.key == tuple(values[:5])
    assert (flow.service_id, flow.backend_id, flow.tcp_flags, flow.rtt_us, flow.flags) == (1, 11, 0x10, 250, 0x04)
    assert (flow.cache_slot, flow.timestamp_us) == (NO_CACHE_SLOT, 0)
    assert flow.rtt_valid
