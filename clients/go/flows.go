package hypmesh

import (
	"context"
	"errors"

	"google.golang.org/grpc"

	rmv1 "github.com/hypmesh/hypmesh/clients/go/gen/hypmesh/rm/v1"
	vmmv1 "github.com/hypmesh/hypmesh/clients/go/gen/hypmesh/vmm/v1"
)

// ACL rights bits (gunyah-rm.md §3.1).
const (
	X   = 1
	W   = 2
	R   = 4
	RW  = R | W
	RWX = R | W | X
)

// Vmm is the VM manager's VM life cycle (hypmesh.vmm.v1.VmmService; README "The VM manager").
// Every method returns an *Error on a refusal.
type Vmm struct{ Client vmmv1.VmmServiceClient }

// NewVmm wraps a connection to the VMM.
func NewVmm(cc grpc.ClientConnInterface) *Vmm { return &Vmm{vmmv1.NewVmmServiceClient(cc)} }

// Session is a VMM session: a stream session lives while its stream is open, a lease while calls
// name it (README "The VM manager"). Close ends it and its VMs are torn down.
type Session struct {
	ID     string
	Events chan *vmmv1.VmEvent // stream sessions only
	cancel context.CancelFunc
	lease  vmmv1.VmmServiceClient
}

// Close ends the session: a stream session's VMs are torn down in the background; CloseLease
// returns once a lease's VMs are torn down.
func (s *Session) Close() error {
	if s.lease != nil {
		_, err := s.lease.CloseLease(context.Background(), &vmmv1.CloseLeaseRequest{SessionId: s.ID})
		return errOrNil(err)
	}
	s.cancel()
	return nil
}

// OpenLease opens a lease session of ttlMs (1000..3600000), renewed by every call naming it.
func (v *Vmm) OpenLease(ctx context.Context, ttlMs uint32) (*Session, error) {
	r, err := v.Client.OpenLease(ctx, &vmmv1.OpenLeaseRequest{TtlMs: ttlMs})
	if err != nil {
		return nil, Decode(err)
	}
	return &Session{ID: r.GetLease().GetSessionId(), lease: v.Client}, nil
}

// OpenSession opens a stream session; its events (VM state changes) arrive on Events, and are
// dropped when nobody reads them.
func (v *Vmm) OpenSession(ctx context.Context) (*Session, error) {
	ctx, cancel := context.WithCancel(ctx)
	stream, err := v.Client.OpenSession(ctx, &vmmv1.OpenSessionRequest{})
	if err != nil {
		cancel()
		return nil, Decode(err)
	}
	first, err := stream.Recv()
	if err != nil {
		cancel()
		return nil, Decode(err)
	}
	if first.GetSessionId() == "" {
		cancel()
		return nil, errors.New("OpenSession: the first message is not the session id")
	}
	s := &Session{ID: first.GetSessionId(), Events: make(chan *vmmv1.VmEvent, 64), cancel: cancel}
	go func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				return
			}
			if ev := m.GetEvent(); ev != nil {
				select {
				case s.Events <- ev:
				default:
				}
			}
		}
	}()
	return s, nil
}

// Bind is one memory binding: host memory at HostAddr appears at GuestAddr (bytes). Lend: the
// host loses access (else SHARE: it keeps it).
type Bind struct {
	GuestAddr, HostAddr, Size uint64
	Lend                      bool
	Rights                    int
}

func vmOf[T interface{ GetVm() *vmmv1.Vm }](r T, err error) (*vmmv1.Vm, error) {
	if err != nil {
		return nil, Decode(err)
	}
	return r.GetVm(), nil
}

// CreateVm creates a VM of the type (GUNYAH or REALM) in the session.
func (v *Vmm) CreateVm(ctx context.Context, s *Session, t vmmv1.VmType, ipaBits uint32) (*vmmv1.Vm, error) {
	return vmOf(v.Client.CreateVm(ctx, &vmmv1.CreateVmRequest{SessionId: s.ID, Type: t, IpaBits: ipaBits}))
}

// MapMem binds memory to the VM.
func (v *Vmm) MapMem(ctx context.Context, s *Session, handle uint64, b Bind) (*vmmv1.Vm, error) {
	mode := vmmv1.BindMode_BIND_MODE_SHARE
	if b.Lend {
		mode = vmmv1.BindMode_BIND_MODE_LEND
	}
	binding := &vmmv1.Binding{GuestAddr: b.GuestAddr, HostAddr: b.HostAddr, Size: b.Size, Mode: mode,
		AllowRead: b.Rights&R != 0, AllowWrite: b.Rights&W != 0, AllowExec: b.Rights&X != 0}
	return vmOf(v.Client.MapMem(ctx, &vmmv1.MapMemRequest{SessionId: s.ID, Handle: handle, Binding: binding}))
}

// CreateAndStart creates a GUNYAH VM, binds its memory, sets the DTB (guest address, size), the
// entry PC and X0 = the DTB (as Linux boots), and starts it (the L24 sequence, gunyah-rm.md §4.4).
func (v *Vmm) CreateAndStart(ctx context.Context, s *Session, binds []Bind, dtbAddr, dtbSize, entry uint64) (*vmmv1.Vm, error) {
	vm, err := v.CreateVm(ctx, s, vmmv1.VmType_VM_TYPE_GUNYAH, 40)
	if err != nil {
		return nil, err
	}
	h := vm.GetHandle()
	for _, b := range binds {
		if _, err := v.MapMem(ctx, s, h, b); err != nil {
			return nil, err
		}
	}
	if _, err := vmOf(v.Client.SetDtbConfig(ctx, &vmmv1.SetDtbConfigRequest{SessionId: s.ID, Handle: h, GuestAddr: dtbAddr, Size: dtbSize})); err != nil {
		return nil, err
	}
	for _, reg := range []struct {
		set   vmmv1.RegSet
		value uint64
	}{{vmmv1.RegSet_REG_SET_PC, entry}, {vmmv1.RegSet_REG_SET_X, dtbAddr}} {
		if _, err := vmOf(v.Client.SetBootContext(ctx, &vmmv1.SetBootContextRequest{SessionId: s.ID, Handle: h, RegSet: reg.set, Index: 0, Value: reg.value})); err != nil {
			return nil, err
		}
	}
	return v.StartVm(ctx, s, h)
}

// StartVm starts a VM (RUNNING on success).
func (v *Vmm) StartVm(ctx context.Context, s *Session, handle uint64) (*vmmv1.Vm, error) {
	return vmOf(v.Client.StartVm(ctx, &vmmv1.StartVmRequest{SessionId: s.ID, Handle: handle}))
}

// StopVm force-stops a VM and waits for VM_STATUS EXITED.
func (v *Vmm) StopVm(ctx context.Context, s *Session, handle uint64) (*vmmv1.Vm, error) {
	return vmOf(v.Client.StopVm(ctx, &vmmv1.StopVmRequest{SessionId: s.ID, Handle: handle}))
}

// DestroyVm tears a VM down now; the result lists the teardown steps and anything leaked.
func (v *Vmm) DestroyVm(ctx context.Context, s *Session, handle uint64) (*vmmv1.Vm, error) {
	return vmOf(v.Client.DestroyVm(ctx, &vmmv1.DestroyVmRequest{SessionId: s.ID, Handle: handle}))
}

// GetVm reads a VM of the session.
func (v *Vmm) GetVm(ctx context.Context, s *Session, handle uint64) (*vmmv1.Vm, error) {
	return vmOf(v.Client.GetVm(ctx, &vmmv1.GetVmRequest{SessionId: s.ID, Handle: handle}))
}

// Rm is the resource manager's typed face (hypmesh.rm.v1.RmService). Calls act as the caller
// they are given (HLOS for the owner's side, the guest's VMID for accept and release).
type Rm struct{ Client rmv1.RmServiceClient }

// NewRm wraps a connection to the RM.
func NewRm(cc grpc.ClientConnInterface) *Rm { return &Rm{rmv1.NewRmServiceClient(cc)} }

// Range is a (base, size) range in bytes.
type Range struct{ Base, Size uint64 }

// Access is one ACL entry: a VMID and its rights (R, RW, RWX, RX).
type Access struct {
	Vmid   uint32
	Rights uint32
}

// VmAllocate allocates a VMID (0: the RM picks one); the RM makes its stage-2 (§4.2).
func (r *Rm) VmAllocate(ctx context.Context, vmid uint32) (uint32, error) {
	res, err := r.Client.VmAllocate(AsCaller(ctx, HLOS), &rmv1.VmAllocateRequest{Vmid: vmid})
	return res.GetVmid(), errOrNil(err)
}

// VmDeallocate frees a VMID and its stage-2.
func (r *Rm) VmDeallocate(ctx context.Context, vmid uint32) error {
	_, err := r.Client.VmDeallocate(AsCaller(ctx, HLOS), &rmv1.VmDeallocateRequest{Vmid: vmid})
	return errOrNil(err)
}

func acl(entries []Access) []*rmv1.AclEntry {
	out := make([]*rmv1.AclEntry, len(entries))
	for i, a := range entries {
		out[i] = &rmv1.AclEntry{Vmid: a.Vmid, Rights: a.Rights}
	}
	return out
}

func sgl(ranges []Range) []*rmv1.SglEntry {
	out := make([]*rmv1.SglEntry, len(ranges))
	for i, g := range ranges {
		out[i] = &rmv1.SglEntry{Base: g.Base, Size: g.Size}
	}
	return out
}

// Lend lends the owner's ranges to the ACL as a parcel (MEM_LEND, §3.2) and returns its handle.
func (r *Rm) Lend(ctx context.Context, owner int, to []Access, ranges []Range, label uint32) (uint32, error) {
	res, err := r.Client.MemLend(AsCaller(ctx, owner), &rmv1.MemLendRequest{MemType: rmv1.MemType_MEM_TYPE_NORMAL, Label: label, Acl: acl(to), Sgl: sgl(ranges)})
	return res.GetHandle(), errOrNil(err)
}

// Share shares the owner's ranges (MEM_SHARE: the owner keeps access and is in the ACL).
func (r *Rm) Share(ctx context.Context, owner int, to []Access, ranges []Range, label uint32) (uint32, error) {
	res, err := r.Client.MemShare(AsCaller(ctx, owner), &rmv1.MemShareRequest{MemType: rmv1.MemType_MEM_TYPE_NORMAL, Label: label, Acl: acl(to), Sgl: sgl(ranges)})
	return res.GetHandle(), errOrNil(err)
}

// Accept accepts a parcel as the borrower (MEM_ACCEPT, §3.4), at IPAs the RM chooses
// (contiguous); lend says the parcel was lent (else shared). Returns the IPA ranges mapped.
func (r *Rm) Accept(ctx context.Context, borrower int, handle uint32, lend bool) ([]Range, error) {
	trans := rmv1.TransType_TRANS_TYPE_SHARE
	if lend {
		trans = rmv1.TransType_TRANS_TYPE_LEND
	}
	res, err := r.Client.MemAccept(AsCaller(ctx, borrower), &rmv1.MemAcceptRequest{Handle: handle, MemType: rmv1.MemType_MEM_TYPE_NORMAL, TransType: trans, Done: true, MapContiguous: true})
	if err != nil {
		return nil, Decode(err)
	}
	var out []Range
	for _, e := range res.GetSgl() {
		out = append(out, Range{e.GetBase(), e.GetSize()})
	}
	return out, nil
}

// Release gives an accepted parcel back (the borrower).
func (r *Rm) Release(ctx context.Context, borrower int, handle uint32) error {
	_, err := r.Client.MemRelease(AsCaller(ctx, borrower), &rmv1.MemReleaseRequest{Handle: handle})
	return errOrNil(err)
}

// Reclaim ends a parcel (the owner); refused MEM_INUSE while a borrower has it accepted.
func (r *Rm) Reclaim(ctx context.Context, owner int, handle uint32) error {
	_, err := r.Client.MemReclaim(AsCaller(ctx, owner), &rmv1.MemReclaimRequest{Handle: handle})
	return errOrNil(err)
}

// errOrNil decodes err, keeping a nil error an untyped nil (not a nil *Error in an error).
func errOrNil(err error) error {
	if err == nil {
		return nil
	}
	return Decode(err)
}
