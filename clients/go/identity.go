// Package hypmesh is the Go client of hypmesh (README "Clients"): connections whose calls name
// their caller, one error type decoded from every status shape, typed helpers for the VM life
// cycle and parcels, and msgq fragments for the RM's byte face. The generated stubs are in
// gen/hypmesh/<core|rm|vmm|fault|common>/v1 (scripts/clients-generate.sh).
package hypmesh

import (
	"context"
	"fmt"
	"strconv"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

// CallerKey is the request metadata naming the caller's VMID, in one spelling only: decimal
// without sign or leading zeros, 0..65535 (README "Calling the core"; packages/rpc/src/caller.ts).
const CallerKey = "x-hypmesh-caller-vmid"

// HOST (pKVM) and HLOS (the RM's name for the host VM) are VMID 3.
const (
	HOST = 3
	HLOS = 3
)

// VmidMax is the largest VMID.
const VmidMax = 0xFFFF

// CallerText is the one spelling the services accept for vmid.
func CallerText(vmid int) (string, error) {
	if vmid < 0 || vmid > VmidMax {
		return "", fmt.Errorf("caller VMID must be in 0..%d, got %d", VmidMax, vmid)
	}
	return strconv.Itoa(vmid), nil
}

// AsCaller returns ctx with vmid as the caller of the calls made with it (replacing any caller
// already set on ctx, and taking precedence over the connection's default).
func AsCaller(ctx context.Context, vmid int) context.Context {
	text, err := CallerText(vmid)
	if err != nil {
		panic(err) // a programming error, as an out-of-range index
	}
	md, _ := metadata.FromOutgoingContext(ctx)
	md = md.Copy()
	md.Set(CallerKey, text)
	return metadata.NewOutgoingContext(ctx, md)
}

func withDefaultCaller(ctx context.Context, text string) context.Context {
	if md, ok := metadata.FromOutgoingContext(ctx); ok && len(md.Get(CallerKey)) > 0 {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, CallerKey, text)
}

// CallerInterceptors add `x-hypmesh-caller-vmid: vmid` to every call (unary and streaming) whose
// context does not name a caller (AsCaller).
func CallerInterceptors(vmid int) ([]grpc.DialOption, error) {
	text, err := CallerText(vmid)
	if err != nil {
		return nil, err
	}
	unary := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		return invoker(withDefaultCaller(ctx, text), method, req, reply, cc, opts...)
	}
	stream := func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		return streamer(withDefaultCaller(ctx, text), desc, cc, method, opts...)
	}
	return []grpc.DialOption{grpc.WithChainUnaryInterceptor(unary), grpc.WithChainStreamInterceptor(stream)}, nil
}

// Connect opens a plaintext connection to address (host:port) whose calls name callerVmid unless
// their context names another (AsCaller). callerVmid < 0 adds no header. The services speak
// plain gRPC on loopback (no TLS yet, issue 11 item 5).
func Connect(address string, callerVmid int, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	all := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if callerVmid >= 0 {
		interceptors, err := CallerInterceptors(callerVmid)
		if err != nil {
			return nil, err
		}
		all = append(all, interceptors...)
	}
	return grpc.NewClient(address, append(all, opts...)...)
}
