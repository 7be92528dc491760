"""Typed helpers for the common flows, raising HypmeshError on any refusal.

- ``Vmm``: a session (stream or lease), then create, bind memory, DTB, boot context, start, stop,
  destroy a VM (README "The VM manager"; gunyah-rm.md §4.4 L24 sequence behind StartVm);
- ``Rm``: lend or share host memory as a parcel and accept, release, reclaim it as the borrower
  (README "The resource manager"; gunyah-rm.md §3).
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Iterable, List, Optional, Sequence, Tuple

import grpc

from hypmesh.errors import call, decode_error
from hypmesh.identity import HLOS, caller_metadata
from hypmesh.rm.v1 import parcel_pb2, rm_service_pb2_grpc, types_pb2 as rm_types, vm_pb2
from hypmesh.vmm.v1 import vmm_service_pb2 as vmm_pb, vmm_service_pb2_grpc

R, W, X = 4, 2, 1
RW, RWX = R | W, R | W | X


class Session:
    """A VMM session. A stream session lives while its stream is open (closing it tears its VMs
    down); a lease lives while calls name it. Use as a context manager."""

    def __init__(self, stub: vmm_service_pb2_grpc.VmmServiceStub, lease_ttl_ms: Optional[int], timeout: float) -> None:
        self._stub = stub
        self.events: "queue.Queue[vmm_pb.VmEvent]" = queue.Queue()
        self._stream = None
        if lease_ttl_ms is not None:
            self.id = call(stub.OpenLease, vmm_pb.OpenLeaseRequest(ttl_ms=lease_ttl_ms), timeout=timeout).lease.session_id
            return
        self._stream = stub.OpenSession(vmm_pb.OpenSessionRequest())
        try:
            first = next(self._stream)
        except grpc.RpcError as e:
            raise decode_error(e) from e
        if first.WhichOneof("message") != "session_id":
            raise RuntimeError("OpenSession: the first message is not the session id")
        self.id = first.session_id
        threading.Thread(target=self._follow, daemon=True).start()

    def _follow(self) -> None:
        try:
            for m in self._stream:  # type: ignore[union-attr]
                if m.WhichOneof("message") == "event":
                    self.events.put(m.event)
        except grpc.RpcError:
            pass  # cancelled by close()

    def close(self) -> None:
        if self._stream is not None:
            self._stream.cancel()
        else:
            call(self._stub.CloseLease, vmm_pb.CloseLeaseRequest(session_id=self.id))

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class Bind:
    """One memory binding: host memory at ``host_addr`` appears at ``guest_addr`` (bytes)."""

    guest_addr: int
    host_addr: int
    size: int
    lend: bool = True
    """LEND (the host loses access) or SHARE (the host keeps it)."""
    rights: int = RWX


class Vmm:
    """The VM manager's VM life cycle (hypmesh.vmm.v1.VmmService)."""

    def __init__(self, channel: grpc.Channel, timeout: float = 30.0) -> None:
        self.stub = vmm_service_pb2_grpc.VmmServiceStub(channel)
        self.timeout = timeout

    def session(self, lease_ttl_ms: Optional[int] = None) -> Session:
        """A stream session, or with ``lease_ttl_ms`` (1000..3600000) a lease."""
        return Session(self.stub, lease_ttl_ms, self.timeout)

    def _vm(self, method, request) -> vmm_pb.Vm:
        return call(method, request, timeout=self.timeout).vm

    def create_vm(self, session: Session, vm_type: int = vmm_pb.VM_TYPE_GUNYAH, ipa_bits: int = 40) -> vmm_pb.Vm:
        return self._vm(self.stub.CreateVm, vmm_pb.CreateVmRequest(session_id=session.id, type=vm_type, ipa_bits=ipa_bits))

    def map_mem(self, session: Session, handle: int, b: Bind) -> vmm_pb.Vm:
        binding = vmm_pb.Binding(
            guest_addr=b.guest_addr,
            host_addr=b.host_addr,
            size=b.size,
            mode=vmm_pb.BIND_MODE_LEND if b.lend else vmm_pb.BIND_MODE_SHARE,
            allow_read=bool(b.rights & R),
            allow_write=bool(b.rights & W),
            allow_exec=bool(b.rights & X),
        )
        return self._vm(self.stub.MapMem, vmm_pb.MapMemRequest(session_id=session.id, handle=handle, binding=binding))

    def set_dtb(self, session: Session, handle: int, guest_addr: int, size: int) -> vmm_pb.Vm:
        return self._vm(self.stub.SetDtbConfig, vmm_pb.SetDtbConfigRequest(session_id=session.id, handle=handle, guest_addr=guest_addr, size=size))

    def set_boot_context(self, session: Session, handle: int, reg_set: int, index: int, value: int) -> vmm_pb.Vm:
        req = vmm_pb.SetBootContextRequest(session_id=session.id, handle=handle, reg_set=reg_set, index=index, value=value)
        return self._vm(self.stub.SetBootContext, req)

    def start_vm(self, session: Session, handle: int) -> vmm_pb.Vm:
        return self._vm(self.stub.StartVm, vmm_pb.StartVmRequest(session_id=session.id, handle=handle))

    def stop_vm(self, session: Session, handle: int) -> vmm_pb.Vm:
        return self._vm(self.stub.StopVm, vmm_pb.StopVmRequest(session_id=session.id, handle=handle))

    def destroy_vm(self, session: Session, handle: int) -> vmm_pb.Vm:
        return self._vm(self.stub.DestroyVm, vmm_pb.DestroyVmRequest(session_id=session.id, handle=handle))

    def get_vm(self, session: Session, handle: int) -> vmm_pb.Vm:
        return self._vm(self.stub.GetVm, vmm_pb.GetVmRequest(session_id=session.id, handle=handle))

    def create_and_start(
        self,
        session: Session,
        bindings: Sequence[Bind],
        dtb: Tuple[int, int],
        entry: int,
        vm_type: int = vmm_pb.VM_TYPE_GUNYAH,
    ) -> vmm_pb.Vm:
        """Create a VM, bind its memory, set the DTB (guest address, size) and the entry PC (and
        X0 = the DTB, as Linux boots), start it; returns the started VM (RUNNING)."""
        vm = self.create_vm(session, vm_type)
        for b in bindings:
            self.map_mem(session, vm.handle, b)
        if vm_type == vmm_pb.VM_TYPE_GUNYAH:
            self.set_dtb(session, vm.handle, *dtb)
            self.set_boot_context(session, vm.handle, vmm_pb.REG_SET_PC, 0, entry)
            self.set_boot_context(session, vm.handle, vmm_pb.REG_SET_X, 0, dtb[0])
        return self.start_vm(session, vm.handle)


class Rm:
    """The resource manager's typed face (hypmesh.rm.v1.RmService). Calls act as HLOS unless
    ``caller`` names another VMID (the borrower, for accept and release)."""

    def __init__(self, channel: grpc.Channel, timeout: float = 30.0) -> None:
        self.stub = rm_service_pb2_grpc.RmServiceStub(channel)
        self.timeout = timeout

    def _call(self, method, request, caller: int):
        return call(method, request, timeout=self.timeout, metadata=caller_metadata(caller))

    def vm_allocate(self, vmid: int = 0, caller: int = HLOS) -> int:
        """A VMID (0: the RM picks one); the RM makes its stage-2 (§4.2)."""
        return self._call(self.stub.VmAllocate, vm_pb2.VmAllocateRequest(vmid=vmid), caller).vmid

    def vm_deallocate(self, vmid: int, caller: int = HLOS) -> None:
        self._call(self.stub.VmDeallocate, vm_pb2.VmDeallocateRequest(vmid=vmid), caller)

    def _parcel(self, method, request_type, acl: Iterable[Tuple[int, int]], sgl: Iterable[Tuple[int, int]], label: int, caller: int) -> int:
        req = request_type(
            mem_type=rm_types.MEM_TYPE_NORMAL,
            label=label,
            acl=[rm_types.AclEntry(vmid=v, rights=r) for v, r in acl],
            sgl=[rm_types.SglEntry(base=b, size=s) for b, s in sgl],
        )
        return self._call(method, req, caller).handle

    def lend(self, acl: Iterable[Tuple[int, int]], sgl: Iterable[Tuple[int, int]], label: int = 0, caller: int = HLOS) -> int:
        """MEM_LEND of the caller's ranges (base, size) to the ACL (vmid, rights); the parcel handle."""
        return self._parcel(self.stub.MemLend, parcel_pb2.MemLendRequest, acl, sgl, label, caller)

    def share(self, acl: Iterable[Tuple[int, int]], sgl: Iterable[Tuple[int, int]], label: int = 0, caller: int = HLOS) -> int:
        """MEM_SHARE: as lend, but the owner keeps access and must be in the ACL (§3.2)."""
        return self._parcel(self.stub.MemShare, parcel_pb2.MemShareRequest, acl, sgl, label, caller)

    def accept(self, handle: int, borrower: int, lend: bool = True, ipa: Optional[Tuple[int, int]] = None) -> List[Tuple[int, int]]:
        """MEM_ACCEPT as ``borrower``: at ``ipa`` (base, size), or where the RM chooses (contiguous).
        Returns the (IPA, size) ranges mapped."""
        req = parcel_pb2.MemAcceptRequest(
            handle=handle,
            mem_type=rm_types.MEM_TYPE_NORMAL,
            trans_type=rm_types.TRANS_TYPE_LEND if lend else rm_types.TRANS_TYPE_SHARE,
            done=True,
            map_contiguous=ipa is None,
            sgl=[] if ipa is None else [rm_types.SglEntry(base=ipa[0], size=ipa[1])],
        )
        return [(e.base, e.size) for e in self._call(self.stub.MemAccept, req, borrower).sgl]

    def release(self, handle: int, borrower: int) -> None:
        self._call(self.stub.MemRelease, parcel_pb2.MemReleaseRequest(handle=handle), borrower)

    def reclaim(self, handle: int, caller: int = HLOS) -> None:
        self._call(self.stub.MemReclaim, parcel_pb2.MemReclaimRequest(handle=handle), caller)
