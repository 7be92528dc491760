package hypmesh

// The Go client against running services (scripts/clients-test.sh starts them; or `npm start` and
// export HYPMESH_CORE_ADDR, HYPMESH_RM_ADDR, HYPMESH_VMM_ADDR): a VM life cycle through the VMM, a
// parcel through the RM, every error shape decoded, and the RM byte face driven with hand-built
// msgq fragments. Host memory used (default core: RAM 2..18 GiB, the VMM keeps the last 64 MiB):
// VM bindings at 6 GiB, parcels at 6 GiB + 256 MiB; the Python tests use 5 GiB.

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	corev1 "github.com/hypmesh/hypmesh/clients/go/gen/hypmesh/core/v1"
	vmmv1 "github.com/hypmesh/hypmesh/clients/go/gen/hypmesh/vmm/v1"
)

const (
	GiB       = 1 << 30
	MiB       = 1 << 20
	vmRAM     = 6 * GiB
	parcelRAM = 6*GiB + 256*MiB
)

func conn(t *testing.T, service string, caller int) *grpc.ClientConn {
	t.Helper()
	name := "HYPMESH_" + strings.ToUpper(service) + "_ADDR"
	addr := os.Getenv(name)
	if addr == "" {
		t.Fatalf("%s is not set: start hypmesh (npm start) and export the three addresses, or run scripts/clients-test.sh", name)
	}
	cc, err := Connect(addr, caller)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

func ownership(t *testing.T, core corev1.CoreServiceClient) string {
	r, err := core.OwnershipCounts(ctx(t), &corev1.OwnershipCountsRequest{})
	if err != nil {
		t.Fatal(Decode(err))
	}
	var b strings.Builder
	for _, o := range r.GetByOwner() {
		fmt.Fprintf(&b, "%d:%d ", o.GetOwnerVmid(), o.GetFrames())
	}
	return b.String()
}

func TestVmLifeCycleThroughTheVmm(t *testing.T) {
	c := ctx(t)
	vmm := NewVmm(conn(t, "vmm", HOST))
	core := corev1.NewCoreServiceClient(conn(t, "core", HOST))
	before := ownership(t, core)
	s, err := vmm.OpenSession(c)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	started, err := vmm.CreateAndStart(c, s, []Bind{
		{GuestAddr: 0x8000_0000, HostAddr: vmRAM, Size: 4 * MiB, Lend: true, Rights: RWX},
		{GuestAddr: 0x9000_0000, HostAddr: vmRAM + 8*MiB, Size: 64 * 1024, Lend: false, Rights: RW},
	}, 0x8010_0000, 0x2000, 0x8000_0000)
	if err != nil {
		t.Fatal(err)
	}
	if started.GetState() != vmmv1.VmState_VM_STATE_RUNNING || started.GetRmStatus() != "RUNNING" || started.GetVmid() < 0x80 || len(started.GetBindings()) != 2 {
		t.Fatalf("started: %v", started)
	}
	if ownership(t, core) == before {
		t.Fatal("the lent binding did not leave the host")
	}
	stopped, err := vmm.StopVm(c, s, started.GetHandle())
	if err != nil || stopped.GetState() != vmmv1.VmState_VM_STATE_STOPPED || stopped.GetRmStatus() != "EXITED" {
		t.Fatalf("stop: %v %v", stopped, err)
	}
	destroyed, err := vmm.DestroyVm(c, s, started.GetHandle())
	if err != nil || destroyed.GetState() != vmmv1.VmState_VM_STATE_DESTROYED || len(destroyed.GetLeaked()) != 0 {
		t.Fatalf("destroy: %v %v", destroyed, err)
	}
	var steps []string
	for _, step := range destroyed.GetTeardown() {
		if !step.GetOk() {
			t.Errorf("teardown step %s failed: %s", step.GetStep(), step.GetError())
		}
		steps = append(steps, step.GetStep())
	}
	if !slices.Contains(steps, "vm_deallocate") {
		t.Errorf("teardown steps %v", steps)
	}
	// The session stream carried the VM's states, in order (events precede each reply).
	var states []vmmv1.VmState
	for !slices.Contains(states, vmmv1.VmState_VM_STATE_DESTROYED) {
		select {
		case ev := <-s.Events:
			if st, ok := ev.GetEvent().(*vmmv1.VmEvent_State); ok && ev.GetHandle() == started.GetHandle() {
				states = append(states, st.State)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no DESTROYED event; states %v", states)
		}
	}
	want := []vmmv1.VmState{vmmv1.VmState_VM_STATE_CREATED, vmmv1.VmState_VM_STATE_RUNNING, vmmv1.VmState_VM_STATE_STOPPED, vmmv1.VmState_VM_STATE_DESTROYING, vmmv1.VmState_VM_STATE_DESTROYED}
	if !slices.Equal(states, want) {
		t.Errorf("states %v, want %v", states, want)
	}
	// The handle is gone: a VMM errno, decoded.
	_, err = vmm.GetVm(c, s, started.GetHandle())
	e := Decode(err)
	if name, no, ok := e.Errno(); e.Code != codes.NotFound || e.Domain != "vmm" || !ok || name != "ENOENT" || no != 2 {
		t.Fatalf("GetVm after destroy: %+v", e)
	}
	if after := ownership(t, core); after != before {
		t.Fatalf("ownership not back: %q → %q", before, after)
	}
}

func TestLeaseClosedTearsItsVmDown(t *testing.T) {
	c := ctx(t)
	vmm := NewVmm(conn(t, "vmm", HOST))
	core := corev1.NewCoreServiceClient(conn(t, "core", HOST))
	before := ownership(t, core)
	lease, err := vmm.OpenLease(c, 60_000)
	if err != nil || lease.ID == "" {
		t.Fatalf("lease: %v %v", lease, err)
	}
	vm, err := vmm.CreateVm(c, lease, vmmv1.VmType_VM_TYPE_GUNYAH, 40)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vmm.MapMem(c, lease, vm.GetHandle(), Bind{GuestAddr: 0x8000_0000, HostAddr: vmRAM + 16*MiB, Size: 64 * 1024, Lend: true, Rights: RWX}); err != nil {
		t.Fatal(err)
	}
	if ownership(t, core) == before {
		t.Fatal("the VM's stage-2 pool was not donated")
	}
	if err := lease.Close(); err != nil {
		t.Fatal(err)
	}
	// CloseLease returned once the VM was torn down.
	if after := ownership(t, core); after != before {
		t.Fatalf("ownership not back: %q → %q", before, after)
	}
	_, err = vmm.GetVm(c, lease, vm.GetHandle())
	if e := Decode(err); e.Code != codes.NotFound || e.CodeName != "EBADF" || e.Rule != "lease_closed" {
		t.Fatalf("GetVm after CloseLease: %+v", e)
	}
}

func TestParcelThroughTheRm(t *testing.T) {
	c := ctx(t)
	rm := NewRm(conn(t, "rm", HLOS))
	core := corev1.NewCoreServiceClient(conn(t, "core", HOST))
	guest, err := rm.VmAllocate(c, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := rm.VmDeallocate(c, guest); err != nil {
			t.Error(err)
		}
	}()
	handle, err := rm.Lend(c, HLOS, []Access{{guest, RW}}, []Range{{parcelRAM, 0x4000}}, 12)
	if err != nil {
		t.Fatal(err)
	}
	mapped, err := rm.Accept(c, int(guest), handle, true)
	if err != nil || len(mapped) != 1 || mapped[0].Size != 0x4000 {
		t.Fatalf("accept: %v %v", mapped, err)
	}
	tr, err := core.Translate(c, &corev1.TranslateRequest{Vmid: guest, Ipa: mapped[0].Base + 0x1000})
	if err != nil || tr.GetPa() != parcelRAM+0x1000 {
		t.Fatalf("translate: %v %v", tr, Decode(err))
	}
	// Reclaim while accepted is MEM_INUSE: an RM error, decoded with the Linux errno.
	e := Decode(rm.Reclaim(c, HLOS, handle))
	name, code, isRm := e.RmError()
	errnoName, errno, _ := e.Errno()
	if e.Code != codes.FailedPrecondition || !isRm || name != "MEM_INUSE" || code != 0xB || errnoName != "EINVAL" || errno != 22 || e.Rule == "" || e.InfoDomain != "rm.hypmesh" {
		t.Fatalf("reclaim while accepted: %+v", e)
	}
	if err := rm.Release(c, int(guest), handle); err != nil {
		t.Fatal(err)
	}
	if err := rm.Reclaim(c, HLOS, handle); err != nil {
		t.Fatal(err)
	}
	if _, err := core.Translate(c, &corev1.TranslateRequest{Vmid: guest, Ipa: mapped[0].Base}); Decode(err).Code != codes.NotFound {
		t.Fatalf("still mapped after reclaim: %v", err)
	}
}

func TestErrorShapes(t *testing.T) {
	c := ctx(t)
	core := corev1.NewCoreServiceClient(conn(t, "core", HOST))
	rm := NewRm(conn(t, "rm", HLOS))

	// errno from the core: PFN 16 is MMIO (the default map has 1 GiB of MMIO at 0).
	_, err := core.HostShareHyp(c, &corev1.HostShareHypRequest{Pfn: 16})
	e := Decode(err)
	if e.Code != codes.FailedPrecondition || e.Domain != "errno" || e.CodeName != "EPERM" || e.Number != 1 || e.Rule != "range_not_memory" || e.Reason != "EPERM" || e.InfoDomain != "errno.hypmesh" {
		t.Errorf("EPERM: %+v", e)
	}

	// An RMI status: a host granule that was never delegated.
	_, err = core.GranuleUndelegate(c, &corev1.GranuleUndelegateRequest{Addr: parcelRAM + 64*MiB})
	e = Decode(err)
	if name, st, ok := e.RmiStatus(); e.Code != codes.InvalidArgument || !ok || name != "RMI_ERROR_INPUT" || st != 1 || e.RmiX0 != uint64(st)|uint64(e.RmiIndex)<<8 {
		t.Errorf("RMI: %+v", e)
	}

	// An RM error: no such parcel.
	_, err = rm.Accept(c, HLOS, 0x7FFF_0000, true)
	e = Decode(err)
	if name, code, ok := e.RmError(); e.Code != codes.NotFound || !ok || name != "HANDLE_INVALID" || code != 7 || e.LinuxErrnoName != "EINVAL" {
		t.Errorf("RM HANDLE_INVALID: %+v", e)
	}

	// A bare status: a guest calling a HOST-only hypercall.
	_, err = core.HostShareHyp(AsCaller(c, 0x80), &corev1.HostShareHypRequest{Pfn: 16})
	e = Decode(err)
	if e.Code != codes.PermissionDenied || e.Domain != "" || e.CodeName != "" || len(e.FieldViolations) != 0 || !strings.Contains(e.Message, "HostShareHyp") {
		t.Errorf("PERMISSION_DENIED: %+v", e)
	}

	// A BadRequest: a connection that names no caller.
	bare := corev1.NewCoreServiceClient(conn(t, "core", -1))
	_, err = bare.HostShareHyp(c, &corev1.HostShareHypRequest{Pfn: 16})
	e = Decode(err)
	if e.Code != codes.InvalidArgument || e.Domain != "" || len(e.FieldViolations) != 1 || e.FieldViolations[0].Field != CallerKey || !strings.Contains(e.FieldViolations[0].Description, "missing") {
		t.Errorf("BadRequest: %+v", e)
	}
}

func TestByteFaceWithHandBuiltFragments(t *testing.T) {
	c := ctx(t)
	cc := conn(t, "rm", HLOS)
	rm := NewRm(cc)
	guest, err := rm.VmAllocate(c, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := rm.VmDeallocate(c, guest); err != nil {
			t.Error(err)
		}
	}()
	// A guest's own queues (HLOS's belong to the VMM: a second HLOS stream would take its notifications).
	x, err := OpenExchange(c, cc, int(guest))
	if err != nil {
		t.Fatal(err)
	}
	m, err := x.Request(MsgVmGetVmid, nil)
	if err != nil || m.Type != TypeReply || m.ErrName() != "OK" || !bytes.Equal(m.Data(), binary.LittleEndian.AppendUint32(nil, guest)) {
		t.Fatalf("VM_GET_VMID: %+v %v", m, err)
	}
	// An unknown message ID: UNIMPLEMENTED, 0xFFFFFFFF (§1.5).
	if m, err := x.Request(0x5600FFFF, nil); err != nil || m.ErrName() != "UNIMPLEMENTED" {
		t.Fatalf("unknown ID: %+v %v", m, err)
	}
	// Two fragments (20 SGL entries, 344 bytes): reassembled by the RM, which finds no such parcel.
	var sglRanges []Range
	for i := uint64(0); i < 20; i++ {
		sglRanges = append(sglRanges, Range{parcelRAM + i*0x1000, 0x1000})
	}
	payload := slices.Concat([]byte{0, 0, 0, 0} /* mem_type NORMAL, reserved[3] (§3.8) */, U32(0x1234), AclList([]Access{{guest, RW}}), SglList(sglRanges), EmptyList())
	if frags, _ := Fragments(TypeRequest, MsgMemQcomLookupSgl, 1, payload); len(frags) != 2 {
		t.Fatalf("%d fragments", len(frags))
	}
	if m, err := x.Request(MsgMemQcomLookupSgl, payload); err != nil || m.ErrName() != "LOOKUP_FAILED" {
		t.Fatalf("lookup: %+v %v", m, err)
	}
	// A fragment with a bad version byte is dropped silently; the next request still works.
	if err := x.SendRaw([]byte{0x22, 0x01, 0x09, 0x00, 0x24, 0x00, 0x00, 0x56}); err != nil {
		t.Fatal(err)
	}
	if m, err := x.Request(MsgVmGetVmid, nil); err != nil || m.Err() != 0 {
		t.Fatalf("after a dropped fragment: %+v %v", m, err)
	}
	// Half-close: the trailers name this stream's refusals and drops.
	trailers, err := x.Close()
	if err != nil {
		t.Fatal(err)
	}
	if r := strings.Join(trailers.Get("x-hypmesh-rm-refusals"), ","); !strings.Contains(r, "LOOKUP_FAILED") {
		t.Errorf("refusals trailer %q", r)
	}
	if d := strings.Join(trailers.Get("x-hypmesh-rm-drops"), ","); d == "" {
		t.Error("no drops trailer")
	}
}
