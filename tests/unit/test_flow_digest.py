"""Decoding the new-flow digest."""

import pytest
from finsy.proto import p4r

from controller.dataplane.flow_digest import FIELDS, MalformedDigest, decode_digest_list
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
    with pytest.raises(MalformedDigest, match="digest 7 list 1: expected 12 bitstring members, got 3"):
        decode_digest_list(digest_list([1, 2, 3]))
