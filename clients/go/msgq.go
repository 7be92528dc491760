package hypmesh

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	rmv1 "github.com/hypmesh/hypmesh/clients/go/gen/hypmesh/rm/v1"
)

// The RM's byte face (docs/gunyah-rm.md §1): RmService.Exchange carries a caller's pair of message
// queues as one stream of raw msgq messages. Each fragment is an 8-byte little-endian header and at
// most 232 payload bytes (§1.2, §1.3): byte 0 = 0x21 (version 1, header length 2 words); byte 1 =
// type (bits 1:0: 0 continuation, 1 request, 2 reply, 3 notification) | continuations << 2 (0..62);
// bytes 2..3 seq (u16); bytes 4..7 message ID (u32). A reply's payload is [err u32][data] (§1.4).
const (
	HeaderByte0        = 0x21
	HeaderSize         = 8
	MessageSize        = 240 // RM_RPC_MESSAGE_SIZE (§1.1)
	FragmentPayloadMax = MessageSize - HeaderSize
	ContinuationsMax   = 62

	TypeContinuation = 0
	TypeRequest      = 1
	TypeReply        = 2
	TypeNotification = 3
)

// Message IDs used by the clients and their tests (§2.1; every RPC of rm_service.proto carries its
// own in the (hypmesh.rm.v1.message_id) option).
const (
	MsgMemQcomLookupSgl = 0x5100001A
	MsgVmAllocate       = 0x56000001
	MsgVmDeallocate     = 0x56000002
	MsgVmGetState       = 0x56000017
	MsgVmGetVmid        = 0x56000024
)

// RmErrors names the RM error codes (§1.5).
var RmErrors = map[uint32]string{
	0x0: "OK", 0xFFFFFFFF: "UNIMPLEMENTED", 0x1: "NOMEM", 0x2: "NORESOURCE", 0x3: "DENIED",
	0x4: "MSG_INVALID", 0x5: "BUSY", 0x6: "ARGUMENT_INVALID", 0x7: "HANDLE_INVALID",
	0x8: "VALIDATE_FAILED", 0x9: "MAP_FAILED", 0xA: "MEM_INVALID", 0xB: "MEM_INUSE",
	0xC: "MEM_RELEASED", 0xD: "VMID_INVALID", 0xE: "LOOKUP_FAILED", 0xF: "IRQ_INVALID",
	0x10: "IRQ_INUSE", 0x11: "IRQ_RELEASED", 0x12: "IN_USE", 0x13: "IRQ_NOT_MAPPED", 0x14: "VM_STATE",
}

// Header is a msgq fragment header.
type Header struct {
	Type, Continuations uint8
	Seq                 uint16
	MsgID               uint32
}

// Encode is the header's 8 bytes.
func (h Header) Encode() []byte {
	b := make([]byte, HeaderSize)
	b[0] = HeaderByte0
	b[1] = h.Type&3 | h.Continuations<<2
	binary.LittleEndian.PutUint16(b[2:], h.Seq)
	binary.LittleEndian.PutUint32(b[4:], h.MsgID)
	return b
}

// DecodeHeader reads a fragment's header.
func DecodeHeader(fragment []byte) (Header, error) {
	if len(fragment) < HeaderSize || fragment[0] != HeaderByte0 {
		return Header{}, fmt.Errorf("not a msgq fragment: % x", fragment[:min(len(fragment), HeaderSize)])
	}
	return Header{Type: fragment[1] & 3, Continuations: fragment[1] >> 2, Seq: binary.LittleEndian.Uint16(fragment[2:]), MsgID: binary.LittleEndian.Uint32(fragment[4:])}, nil
}

// Fragments is one RM message as its msgq fragments (§1.3): the first with the real type, the
// rest type 0 repeating ID, seq and continuation count; ceil(len/232)-1 continuations (0 if empty).
func Fragments(msgType uint8, msgID uint32, seq uint16, payload []byte) ([][]byte, error) {
	n := (len(payload) + FragmentPayloadMax - 1) / FragmentPayloadMax
	if n == 0 {
		n = 1
	}
	if n-1 > ContinuationsMax {
		return nil, fmt.Errorf("payload of %d bytes needs %d continuations (max %d)", len(payload), n-1, ContinuationsMax)
	}
	out := make([][]byte, 0, n)
	for i := 0; i < n; i++ {
		t := msgType
		if i > 0 {
			t = TypeContinuation
		}
		chunk := payload[min(i*FragmentPayloadMax, len(payload)):min((i+1)*FragmentPayloadMax, len(payload))]
		out = append(out, append(Header{t, uint8(n - 1), seq, msgID}.Encode(), chunk...))
	}
	return out, nil
}

// Payload pieces (§3.1): a list is u16 count, u16 reserved, then its entries.

// U32 is a little-endian u32.
func U32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }

// AclList encodes an ACL list.
func AclList(entries []Access) []byte {
	b := binary.LittleEndian.AppendUint16(nil, uint16(len(entries)))
	b = binary.LittleEndian.AppendUint16(b, 0)
	for _, a := range entries {
		b = binary.LittleEndian.AppendUint16(b, uint16(a.Vmid))
		b = append(b, byte(a.Rights), 0)
	}
	return b
}

// SglList encodes an SGL list.
func SglList(ranges []Range) []byte {
	b := binary.LittleEndian.AppendUint16(nil, uint16(len(ranges)))
	b = binary.LittleEndian.AppendUint16(b, 0)
	for _, g := range ranges {
		b = binary.LittleEndian.AppendUint64(b, g.Base)
		b = binary.LittleEndian.AppendUint64(b, g.Size)
	}
	return b
}

// EmptyList is a list with no entries (an attr list Linux always sends empty).
func EmptyList() []byte { return []byte{0, 0, 0, 0} }

// Message is a reassembled message from the RM.
type Message struct {
	Type    uint8
	Seq     uint16
	MsgID   uint32
	Payload []byte
}

// Err is a reply's RM error code (§1.4).
func (m Message) Err() uint32 {
	if len(m.Payload) < 4 {
		return 0xFFFFFFFF
	}
	return binary.LittleEndian.Uint32(m.Payload)
}

// ErrName is the reply's RM error by name.
func (m Message) ErrName() string {
	if n, ok := RmErrors[m.Err()]; ok {
		return n
	}
	return fmt.Sprintf("0x%x", m.Err())
}

// Data is a reply's data after the error word.
func (m Message) Data() []byte { return m.Payload[min(4, len(m.Payload)):] }

// Reassembler joins the RM's fragments into messages (§1.3, as Linux receives them).
type Reassembler struct {
	first *Header
	parts []byte
	have  int
}

// Push adds a fragment; it returns the message once its last fragment is in.
func (r *Reassembler) Push(fragment []byte) (*Message, error) {
	h, err := DecodeHeader(fragment)
	if err != nil {
		return nil, err
	}
	if h.Type != TypeContinuation {
		r.first, r.parts, r.have = &h, append([]byte(nil), fragment[HeaderSize:]...), 1
	} else {
		f := r.first
		if f == nil || h.Seq != f.Seq || h.MsgID != f.MsgID || h.Continuations != f.Continuations {
			r.first = nil
			return nil, fmt.Errorf("continuation %+v matches no pending message", h)
		}
		r.parts = append(r.parts, fragment[HeaderSize:]...)
		r.have++
	}
	if r.have < int(r.first.Continuations)+1 {
		return nil, nil
	}
	f := r.first
	r.first = nil
	return &Message{f.Type, f.Seq, f.MsgID, r.parts}, nil
}

// Exchange is one RmService.Exchange stream as a caller: requests go out as fragments, replies
// are matched by seq and msg_id; notifications (type 3) are kept in Notifications.
type Exchange struct {
	stream        grpc.BidiStreamingClient[rmv1.ExchangeRequest, rmv1.ExchangeResponse]
	cancel        context.CancelFunc
	seq           uint16
	reassembler   Reassembler
	Notifications []Message
	Timeout       time.Duration
}

// OpenExchange opens the byte face as vmid.
func OpenExchange(ctx context.Context, cc grpc.ClientConnInterface, vmid int) (*Exchange, error) {
	ctx, cancel := context.WithCancel(AsCaller(ctx, vmid))
	stream, err := rmv1.NewRmServiceClient(cc).Exchange(ctx)
	if err != nil {
		cancel()
		return nil, Decode(err)
	}
	return &Exchange{stream: stream, cancel: cancel, Timeout: 10 * time.Second}, nil
}

// SendRaw writes any bytes as one fragment (a fuzzer's, a captured trace's).
func (x *Exchange) SendRaw(fragment []byte) error {
	return x.stream.Send(&rmv1.ExchangeRequest{Fragment: fragment})
}

// Request sends one request (fragmented as needed) and returns its reply.
func (x *Exchange) Request(msgID uint32, payload []byte) (*Message, error) {
	x.seq++
	frags, err := Fragments(TypeRequest, msgID, x.seq, payload)
	if err != nil {
		return nil, err
	}
	for _, f := range frags {
		if err := x.SendRaw(f); err != nil {
			return nil, Decode(err)
		}
	}
	return x.reply(x.seq, msgID)
}

type received struct {
	m   *Message
	err error
}

func (x *Exchange) reply(seq uint16, msgID uint32) (*Message, error) {
	timer := time.NewTimer(x.Timeout)
	defer timer.Stop()
	for {
		got := make(chan received, 1)
		go func() {
			r, err := x.stream.Recv()
			if err != nil {
				got <- received{nil, err}
				return
			}
			m, err := x.reassembler.Push(r.GetFragment())
			got <- received{m, err}
		}()
		select {
		case <-timer.C:
			x.cancel()
			return nil, fmt.Errorf("no reply to seq %d msg 0x%08x within %s", seq, msgID, x.Timeout)
		case r := <-got:
			if r.err != nil {
				return nil, Decode(r.err)
			}
			if r.m == nil {
				continue
			}
			if r.m.Type == TypeNotification {
				x.Notifications = append(x.Notifications, *r.m)
			} else if r.m.Type == TypeReply && r.m.Seq == seq && r.m.MsgID == msgID {
				return r.m, nil
			}
		}
	}
}

// Close half-closes the stream, waits for its end and returns its trailers
// (x-hypmesh-rm-refusals, x-hypmesh-rm-drops).
func (x *Exchange) Close() (metadata.MD, error) {
	defer x.cancel()
	if err := x.stream.CloseSend(); err != nil {
		return nil, err
	}
	for {
		if _, err := x.stream.Recv(); err != nil {
			if errors.Is(err, context.Canceled) {
				return nil, err
			}
			return x.stream.Trailer(), nil
		}
	}
}
