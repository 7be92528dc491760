// Package hypmesh is the Go client of hypmesh (README "Clients"): connections whose calls name
// their caller, one error type decoded from every status shape, typed helpers for the VM life
// cycle and parcels, and msgq fragments for the RM's byte face. The generated stubs are in
// gen/hypmesh/<core|rm|vmm|fault|common>/v1 (scripts/clients-generate.sh).
package hypmesh

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strconv"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
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

// TLSCredentials are mTLS transport credentials from PEM files (README "Security"): the client
// certificate and its key, whose URI SAN spiffe://hypmesh/vmid/<n> names the caller, and the CA
// the services' certificates must chain to (scripts/make-test-ca.sh makes a test set).
func TLSCredentials(certFile, keyFile, caFile string) (credentials.TransportCredentials, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("client certificate %s / key %s: %w", certFile, keyFile, err)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("CA %s: %w", caFile, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA %s: no PEM certificate", caFile)
	}
	return credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool, MinVersion: tls.VersionTLS12}), nil
}

// ConnectTLS opens an mTLS connection to address with the certificate in certFile/keyFile,
// trusting caFile. The certificate names the caller: pass callerVmid < 0 to send no header (one
// that is sent must agree with the certificate, or the call is PERMISSION_DENIED).
func ConnectTLS(address string, callerVmid int, certFile, keyFile, caFile string, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	creds, err := TLSCredentials(certFile, keyFile, caFile)
	if err != nil {
		return nil, err
	}
	return Connect(address, callerVmid, append([]grpc.DialOption{grpc.WithTransportCredentials(creds)}, opts...)...)
}

// Connect opens a plaintext connection to address (host:port) whose calls name callerVmid unless
// their context names another (AsCaller). callerVmid < 0 adds no header. Plaintext identity is
// declared: insecure local use only; ConnectTLS is the mTLS form.
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
