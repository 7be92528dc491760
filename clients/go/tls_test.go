package hypmesh

// mTLS from Go (README "Security"): a core of its own, started here with the test PKI of
// scripts/make-test-ca.sh (services/core/dist from `npm run build`), called with ConnectTLS.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"

	corev1 "github.com/hypmesh/hypmesh/clients/go/gen/hypmesh/core/v1"
)

// tlsCore starts a core serving mTLS and returns its address (localhost:port) and the PKI dir.
func tlsCore(t *testing.T) (string, string) {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	pki := t.TempDir()
	if out, err := exec.Command(filepath.Join(root, "scripts/make-test-ca.sh"), pki).CombinedOutput(); err != nil {
		t.Fatalf("make-test-ca.sh: %v\n%s", err, out)
	}
	core := exec.Command("node", filepath.Join(root, "services/core/dist/main.js"), "--address", "127.0.0.1:0",
		"--tls-cert", pki+"/core.crt", "--tls-key", pki+"/core.key", "--tls-ca", pki+"/ca.crt")
	core.Dir = root
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HYPMESH_") {
			core.Env = append(core.Env, kv)
		}
	}
	stdout, err := core.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := core.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { core.Process.Kill(); core.Wait() })
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		var entry struct {
			Msg  string `json:"msg"`
			Port int    `json:"port"`
		}
		if json.Unmarshal(lines.Bytes(), &entry) == nil && entry.Msg == "hypmesh core serving" {
			go func() {
				for lines.Scan() {
				}
			}()
			return fmt.Sprintf("localhost:%d", entry.Port), pki
		}
	}
	t.Fatal("the core exited before serving")
	return "", ""
}

func TestTLS(t *testing.T) {
	addr, pki := tlsCore(t)
	client := func(name string) corev1.CoreServiceClient {
		cc, err := ConnectTLS(addr, -1, pki+"/"+name+".crt", pki+"/"+name+".key", pki+"/ca.crt")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		return corev1.NewCoreServiceClient(cc)
	}

	t.Run("a HOST certificate is HOST without a header", func(t *testing.T) {
		r, err := client("host-cli").OwnershipCounts(ctx(t), &corev1.OwnershipCountsRequest{})
		if err != nil {
			t.Fatal(Decode(err))
		}
		if len(r.GetByOwner()) == 0 {
			t.Fatal("no owners")
		}
	})

	t.Run("a guest certificate on a HOST RPC is PERMISSION_DENIED", func(t *testing.T) {
		_, err := client("guest-128").HostShareHyp(ctx(t), &corev1.HostShareHypRequest{Pfn: 524304})
		e := Decode(err)
		if e == nil || e.Code != codes.PermissionDenied || !strings.Contains(e.Message, "caller is VMID 0x80") {
			t.Fatalf("want PERMISSION_DENIED naming VMID 0x80, got %v", e)
		}
	})

	t.Run("without a client certificate the handshake fails", func(t *testing.T) {
		ca, err := credentials.NewClientTLSFromFile(pki+"/ca.crt", "")
		if err != nil {
			t.Fatal(err)
		}
		cc, err := Connect(addr, HOST, grpc.WithTransportCredentials(ca))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		_, err = corev1.NewCoreServiceClient(cc).OwnershipCounts(ctx(t), &corev1.OwnershipCountsRequest{})
		if e := Decode(err); e == nil || e.Code != codes.Unavailable {
			t.Fatalf("want UNAVAILABLE, got %v", e)
		}
	})

	t.Run("a missing file is a clear error", func(t *testing.T) {
		_, err := ConnectTLS(addr, -1, pki+"/nope.crt", pki+"/nope.key", pki+"/ca.crt")
		if err == nil || !strings.Contains(err.Error(), "nope.crt") {
			t.Fatalf("want an error naming nope.crt, got %v", err)
		}
	})
}
