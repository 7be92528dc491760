package hypmesh

import (
	"bytes"
	"testing"
)

// The fragment builder and reassembler alone (docs/gunyah-rm.md §1.2, §1.3): no service needed.

func TestVmGetVmidRequestIsTheReadmeBytes(t *testing.T) {
	frags, err := Fragments(TypeRequest, MsgVmGetVmid, 1, nil)
	if err != nil || len(frags) != 1 || !bytes.Equal(frags[0], []byte{0x21, 0x01, 0x01, 0x00, 0x24, 0x00, 0x00, 0x56}) {
		t.Fatalf("VM_GET_VMID seq 1 = % x, %v", frags, err)
	}
}

func TestLongPayloadSplitsInto232ByteFragmentsAndReassembles(t *testing.T) {
	payload := make([]byte, 512)
	for i := range payload {
		payload[i] = byte(i)
	}
	frags, err := Fragments(TypeRequest, MsgMemQcomLookupSgl, 7, payload)
	if err != nil {
		t.Fatal(err)
	}
	if got := []int{len(frags[0]), len(frags[1]), len(frags[2])}; len(frags) != 3 || got[0] != 240 || got[1] != 240 || got[2] != 56 {
		t.Fatalf("fragment sizes %v", got)
	}
	var r Reassembler
	for i, f := range frags {
		h, _ := DecodeHeader(f)
		wantType := uint8(TypeContinuation)
		if i == 0 {
			wantType = TypeRequest
		}
		if h != (Header{wantType, 2, 7, MsgMemQcomLookupSgl}) {
			t.Fatalf("fragment %d header %+v", i, h)
		}
		m, err := r.Push(f)
		if err != nil || (i < 2) != (m == nil) {
			t.Fatalf("push %d: %v %v", i, m, err)
		}
		if i == 2 && !bytes.Equal(m.Payload, payload) {
			t.Fatal("reassembled payload differs")
		}
	}
}

func TestLimitsAndMismatchesAreRefused(t *testing.T) {
	if _, err := Fragments(TypeRequest, 1, 1, make([]byte, 232*64)); err == nil {
		t.Fatal("63 continuations accepted")
	}
	if _, err := DecodeHeader([]byte{0x22, 1, 1, 0, 0x24, 0, 0, 0x56}); err == nil {
		t.Fatal("wrong version byte accepted")
	}
	frags, _ := Fragments(TypeReply, 5, 1, make([]byte, 300))
	var r Reassembler
	_, _ = r.Push(frags[0])
	other := append([]byte(nil), frags[1]...)
	other[2] = 2 // another seq
	if _, err := r.Push(other); err == nil {
		t.Fatal("a continuation of another seq was joined")
	}
}

func TestCallerHasOneSpelling(t *testing.T) {
	if s, err := CallerText(128); s != "128" || err != nil {
		t.Fatalf("128 → %q %v", s, err)
	}
	for _, bad := range []int{-1, 65536} {
		if _, err := CallerText(bad); err == nil {
			t.Fatalf("%d accepted", bad)
		}
	}
}
