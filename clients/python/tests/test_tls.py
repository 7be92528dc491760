"""mTLS from Python (README "Security"): a core of its own, started here with the test PKI of
scripts/make-test-ca.sh (services/core/dist from `npm run build`), called with connect(tls_*=)."""

import json
import os
import pathlib
import subprocess
import tempfile

import grpc
import pytest

import hypmesh
from hypmesh.core.v1 import core_service_pb2_grpc, pkvm_pb2, query_pb2

ROOT = pathlib.Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def tls_core():
    with tempfile.TemporaryDirectory(prefix="hypmesh-py-tls-") as pki:
        subprocess.run([str(ROOT / "scripts/make-test-ca.sh"), pki], check=True, capture_output=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("HYPMESH_")}
        files = lambda name: ["--tls-cert", f"{pki}/{name}.crt", "--tls-key", f"{pki}/{name}.key", "--tls-ca", f"{pki}/ca.crt"]
        core = subprocess.Popen(["node", str(ROOT / "services/core/dist/main.js"), "--address", "127.0.0.1:0", *files("core")], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
        try:
            port = None
            for line in core.stdout:  # pino JSON lines; the serving line names the port
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if entry.get("msg") == "hypmesh core serving":
                    port = entry["port"]
                    break
            assert port is not None, "the core exited before serving"
            yield f"localhost:{port}", pki
        finally:
            core.terminate()
            core.wait(timeout=15)


def _client(address, pki, name):
    return hypmesh.connect(address, tls_cert=f"{pki}/{name}.crt", tls_key=f"{pki}/{name}.key", tls_ca=f"{pki}/ca.crt")


def test_a_host_certificate_is_host_without_a_header(tls_core):
    address, pki = tls_core
    with _client(address, pki, "host-cli") as ch:
        counts = core_service_pb2_grpc.CoreServiceStub(ch).OwnershipCounts(query_pb2.OwnershipCountsRequest(), timeout=20)
        assert len(counts.by_owner) > 0


def test_a_guest_certificate_on_a_host_rpc_is_permission_denied(tls_core):
    address, pki = tls_core
    with _client(address, pki, "guest-128") as ch:
        with pytest.raises(grpc.RpcError) as e:
            core_service_pb2_grpc.CoreServiceStub(ch).HostShareHyp(pkvm_pb2.HostShareHypRequest(pfn=524304), timeout=20)
        err = hypmesh.decode_error(e.value)
        assert err.grpc_code == grpc.StatusCode.PERMISSION_DENIED
        assert "caller is VMID 0x80" in str(err)


def test_without_a_certificate_the_handshake_fails(tls_core):
    address, pki = tls_core
    with grpc.secure_channel(address, grpc.ssl_channel_credentials(root_certificates=open(f"{pki}/ca.crt", "rb").read())) as ch:
        with pytest.raises(grpc.RpcError) as e:
            core_service_pb2_grpc.CoreServiceStub(ch).OwnershipCounts(query_pb2.OwnershipCountsRequest(), metadata=hypmesh.caller_metadata(3), timeout=20)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE


def test_a_partial_set_is_a_value_error():
    with pytest.raises(ValueError, match="tls_cert, tls_key and tls_ca together"):
        hypmesh.connect("localhost:1", tls_cert="a.crt")
