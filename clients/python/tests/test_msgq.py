"""The fragment builder and reassembler alone (docs/gunyah-rm.md §1.2, §1.3): no service needed."""

import pytest

from hypmesh import msgq


def test_vm_get_vmid_request_is_the_readme_bytes():
    # README: VM_GET_VMID, header 21 01 | seq 01 00 | msg id 24 00 00 56.
    assert msgq.request_fragments(msgq.MSG["VM_GET_VMID"], 1) == [bytes.fromhex("2101010024000056")]


def test_a_long_payload_is_split_into_232_byte_fragments_that_repeat_id_seq_and_count():
    payload = bytes(range(256)) * 2  # 512 bytes: 232 + 232 + 48
    frags = msgq.fragments(msgq.TYPE_REQUEST, 0x5100001A, 7, payload)
    assert [len(f) for f in frags] == [240, 240, 56]
    heads = [msgq.decode_header(f) for f in frags]
    assert [h.type for h in heads] == [1, 0, 0]
    assert {(h.continuations, h.seq, h.msg_id) for h in heads} == {(2, 7, 0x5100001A)}
    r = msgq.Reassembler()
    assert r.push(frags[0]) is None and r.push(frags[1]) is None
    m = r.push(frags[2])
    assert (m.type, m.seq, m.msg_id, m.payload) == (1, 7, 0x5100001A, payload)


def test_limits_and_mismatches_are_refused():
    with pytest.raises(ValueError):
        msgq.fragments(msgq.TYPE_REQUEST, 1, 1, bytes(232 * 64))  # 63 continuations
    with pytest.raises(ValueError):
        msgq.decode_header(b"\x22\x01\x01\x00\x24\x00\x00\x56")  # wrong version byte
    r = msgq.Reassembler()
    first, second = msgq.fragments(msgq.TYPE_REPLY, 5, 1, bytes(300))
    r.push(first)
    with pytest.raises(ValueError):
        r.push(second[:2] + b"\x02\x00" + second[4:])  # another seq
