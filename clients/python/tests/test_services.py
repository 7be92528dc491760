"""The Python client against running services: a VM life cycle through the VMM, a parcel through
the RM, every error shape decoded, and the RM byte face driven with hand-built msgq fragments.

Host memory the tests use (the default core: RAM 2..18 GiB, the VMM keeps the last 64 MiB): VM
bindings at 5 GiB, parcels at 5 GiB + 256 MiB; the Go client's tests use 6 GiB, so the two
suites can run against one system.
"""

import grpc
import pytest

import hypmesh
from hypmesh import Bind, HypmeshError, msgq
from hypmesh.core.v1 import core_service_pb2_grpc, pkvm_pb2, query_pb2, rmi_pb2
from hypmesh.vmm.v1 import vmm_service_pb2 as vmm_pb

GiB, MiB = 1 << 30, 1 << 20
VM_RAM = 5 * GiB
PARCEL_RAM = 5 * GiB + 256 * MiB


def ownership(core_channel):
    core = core_service_pb2_grpc.CoreServiceStub(core_channel)
    r = hypmesh.call(core.OwnershipCounts, query_pb2.OwnershipCountsRequest(), timeout=10)
    return sorted((o.owner_vmid, o.frames) for o in r.by_owner)


def test_vm_life_cycle_through_the_vmm(vmm_channel, core_channel):
    vmm = hypmesh.Vmm(vmm_channel)
    before = ownership(core_channel)
    with vmm.session() as s:
        started = vmm.create_and_start(
            s,
            [Bind(0x8000_0000, VM_RAM, 4 * MiB), Bind(0x9000_0000, VM_RAM + 8 * MiB, 64 * 1024, lend=False, rights=hypmesh.RW)],
            dtb=(0x8010_0000, 0x2000),
            entry=0x8000_0000,
        )
        assert (started.state, started.rm_status) == (vmm_pb.VM_STATE_RUNNING, "RUNNING")
        assert started.vmid >= 0x80 and started.host_pages > 0
        assert len(started.bindings) == 2
        assert ownership(core_channel) != before  # the lent binding left the host

        stopped = vmm.stop_vm(s, started.handle)
        assert (stopped.state, stopped.rm_status) == (vmm_pb.VM_STATE_STOPPED, "EXITED")
        destroyed = vmm.destroy_vm(s, started.handle)
        assert destroyed.state == vmm_pb.VM_STATE_DESTROYED
        assert list(destroyed.leaked) == []
        assert [t.step for t in destroyed.teardown if not t.ok] == []
        assert "vm_deallocate" in [t.step for t in destroyed.teardown]

        # The session stream carried the VM's states, in order (events precede each reply).
        states = []
        while vmm_pb.VM_STATE_DESTROYED not in states:
            event = s.events.get(timeout=10)
            if event.handle == started.handle and event.WhichOneof("event") == "state":
                states.append(event.state)
        assert states == [vmm_pb.VM_STATE_CREATED, vmm_pb.VM_STATE_RUNNING, vmm_pb.VM_STATE_STOPPED, vmm_pb.VM_STATE_DESTROYING, vmm_pb.VM_STATE_DESTROYED]

        # The handle is gone: a VMM errno, decoded.
        with pytest.raises(HypmeshError) as gone:
            vmm.get_vm(s, started.handle)
        assert (gone.value.grpc_code, gone.value.domain, gone.value.code_name, gone.value.errno) == (grpc.StatusCode.NOT_FOUND, "vmm", "ENOENT", 2)
    assert ownership(core_channel) == before


def test_a_lease_session_closed_tears_its_vm_down(vmm_channel, core_channel):
    vmm = hypmesh.Vmm(vmm_channel)
    before = ownership(core_channel)
    with vmm.session(lease_ttl_ms=60_000) as lease:
        assert lease.id
        vm = vmm.create_vm(lease)
        vmm.map_mem(lease, vm.handle, Bind(0x8000_0000, VM_RAM + 16 * MiB, 64 * 1024))
        assert [b.size for b in vmm.get_vm(lease, vm.handle).bindings] == [64 * 1024]
        assert ownership(core_channel) != before  # the VM's stage-2 pool was donated
    # CloseLease returned once the VM was torn down.
    assert ownership(core_channel) == before
    with pytest.raises(HypmeshError) as closed:
        vmm.get_vm(lease, vm.handle)
    assert (closed.value.grpc_code, closed.value.code_name, closed.value.rule) == (grpc.StatusCode.NOT_FOUND, "EBADF", "lease_closed")


def test_parcel_lent_accepted_released_reclaimed_through_the_rm(rm_channel, core_channel):
    rm = hypmesh.Rm(rm_channel)
    core = core_service_pb2_grpc.CoreServiceStub(core_channel)
    guest = rm.vm_allocate()
    try:
        handle = rm.lend(acl=[(guest, hypmesh.RW)], sgl=[(PARCEL_RAM, 0x4000)], label=11)
        mapped = rm.accept(handle, borrower=guest)
        assert len(mapped) == 1 and mapped[0][1] == 0x4000
        ipa = mapped[0][0]
        t = hypmesh.call(core.Translate, query_pb2.TranslateRequest(vmid=guest, ipa=ipa + 0x1000), timeout=10)
        assert t.pa == PARCEL_RAM + 0x1000
        # Reclaim while accepted is MEM_INUSE: an RM error, decoded with the Linux errno.
        with pytest.raises(HypmeshError) as inuse:
            rm.reclaim(handle)
        e = inuse.value
        assert (e.grpc_code, e.domain, e.rm_error, e.errno_name, e.errno) == (grpc.StatusCode.FAILED_PRECONDITION, "rm", ("MEM_INUSE", 0xB), "EINVAL", 22)
        assert e.rule and e.info_domain == "rm.hypmesh"
        rm.release(handle, borrower=guest)
        rm.reclaim(handle)
        with pytest.raises(HypmeshError) as unmapped:
            hypmesh.call(core.Translate, query_pb2.TranslateRequest(vmid=guest, ipa=ipa), timeout=10)
        assert unmapped.value.grpc_code == grpc.StatusCode.NOT_FOUND
    finally:
        rm.vm_deallocate(guest)


def test_an_rm_error_for_an_unknown_parcel(rm_channel):
    rm = hypmesh.Rm(rm_channel)
    with pytest.raises(HypmeshError) as e:
        rm.accept(0x7FFF_0000, borrower=hypmesh.HLOS)
    assert (e.value.grpc_code, e.value.rm_error, e.value.linux_errno_name) == (grpc.StatusCode.NOT_FOUND, ("HANDLE_INVALID", 7), "EINVAL")


def test_errno_from_the_core_eperm(core_channel):
    core = core_service_pb2_grpc.CoreServiceStub(core_channel)
    # PFN 16 is MMIO (the default map has 1 GiB of MMIO at 0): not memory the host can share.
    with pytest.raises(HypmeshError) as e:
        hypmesh.call(core.HostShareHyp, pkvm_pb2.HostShareHypRequest(pfn=16), timeout=10)
    err = e.value
    assert (err.grpc_code, err.domain, err.code_name, err.code, err.errno) == (grpc.StatusCode.FAILED_PRECONDITION, "errno", "EPERM", 1, 1)
    assert err.rule == "range_not_memory"
    assert err.reason == "EPERM" and err.info_domain == "errno.hypmesh" and err.metadata["rule"] == "range_not_memory"


def test_rmi_status_from_the_core(core_channel):
    core = core_service_pb2_grpc.CoreServiceStub(core_channel)
    # A host RAM granule that was never delegated.
    with pytest.raises(HypmeshError) as e:
        hypmesh.call(core.GranuleUndelegate, rmi_pb2.GranuleUndelegateRequest(addr=PARCEL_RAM + 64 * MiB), timeout=10)
    err = e.value
    assert (err.grpc_code, err.domain, err.rmi_status) == (grpc.StatusCode.INVALID_ARGUMENT, "rmi", ("RMI_ERROR_INPUT", 1))
    assert err.rmi_x0 == err.code | err.rmi_index << 8 and err.errno is None


def test_bare_status_permission_denied(core_channel):
    core = core_service_pb2_grpc.CoreServiceStub(core_channel)
    # A guest calling a HOST-only hypercall: PERMISSION_DENIED, code and message only.
    with pytest.raises(HypmeshError) as e:
        hypmesh.call(core.HostShareHyp, pkvm_pb2.HostShareHypRequest(pfn=16), timeout=10, metadata=hypmesh.caller_metadata(0x80))
    err = e.value
    assert err.grpc_code == grpc.StatusCode.PERMISSION_DENIED
    assert (err.domain, err.code_name, err.field_violations) == ("", "", [])
    assert "HostShareHyp" in err.message


def test_bad_request_names_the_field(addresses):
    # A stub whose channel names no caller: the header is missing.
    core = hypmesh.stub(core_service_pb2_grpc.CoreServiceStub, addresses["core"], caller_vmid=None)
    with pytest.raises(HypmeshError) as e:
        hypmesh.call(core.HostShareHyp, pkvm_pb2.HostShareHypRequest(pfn=16), timeout=10)
    err = e.value
    assert err.grpc_code == grpc.StatusCode.INVALID_ARGUMENT and err.domain == ""
    assert [v.field for v in err.field_violations] == [hypmesh.CALLER_VMID_KEY]
    assert "missing" in err.field_violations[0].description


def test_the_caller_header_has_one_spelling():
    assert hypmesh.caller_metadata(128) == ((hypmesh.CALLER_VMID_KEY, "128"),)
    for bad in (-1, 65536, "3", True):
        with pytest.raises(ValueError):
            hypmesh.caller_metadata(bad)


def test_byte_face_with_hand_built_fragments(rm_channel):
    rm = hypmesh.Rm(rm_channel)
    guest = rm.vm_allocate()
    try:
        # A guest's own queues (HLOS's belong to the VMM: a second HLOS stream would take its notifications).
        x = msgq.Exchange(rm_channel, guest)
        r = x.request(msgq.MSG["VM_GET_VMID"])
        assert (r.type, r.error_name, r.data) == (msgq.TYPE_REPLY, "OK", guest.to_bytes(4, "little"))
        # An unknown message ID: UNIMPLEMENTED, 0xFFFFFFFF (§1.5).
        assert x.request(0x5600FFFF).error_name == "UNIMPLEMENTED"
        # Two fragments (20 SGL entries, 344 bytes): reassembled by the RM, which finds no such parcel.
        payload = (
            bytes([0, 0, 0, 0])  # mem_type NORMAL, reserved[3] (§3.8)
            + msgq.u32(0x1234)
            + msgq.acl_list([(guest, hypmesh.RW)])
            + msgq.sgl_list([(PARCEL_RAM + i * 0x1000, 0x1000) for i in range(20)])
            + msgq.attr_list()
        )
        assert len(msgq.request_fragments(msgq.MSG["MEM_QCOM_LOOKUP_SGL"], 1, payload)) == 2
        assert x.request(msgq.MSG["MEM_QCOM_LOOKUP_SGL"], payload).error_name == "LOOKUP_FAILED"
        # A fragment with a bad version byte is dropped silently; the next request still works.
        x.send_raw(b"\x22\x01\x09\x00\x24\x00\x00\x56")
        assert x.request(msgq.MSG["VM_GET_VMID"]).error == 0
        # Half-close: the trailers name this stream's refusals and drops.
        trailers = dict(x.close())
        assert "LOOKUP_FAILED" in trailers.get("x-hypmesh-rm-refusals", "")
        assert trailers.get("x-hypmesh-rm-drops", "") != ""
    finally:
        rm.vm_deallocate(guest)
