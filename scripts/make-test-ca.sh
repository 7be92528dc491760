#!/usr/bin/env bash
# Test PKI for hypmesh mTLS (issue 11 item 5; packages/rpc/src/tls.ts). NOT for production: keys are
# unencrypted and valid for a day. Usage: scripts/make-test-ca.sh DIR
#
# DIR/ca.crt                     the test CA (every --tls-ca)
# DIR/{core,rm,vmm}.{crt,key}    server certificates: DNS localhost, IP 127.0.0.1
# DIR/host-vmm.{crt,key}         client: spiffe://hypmesh/vmid/3 + spiffe://hypmesh/client/vmm (the VMM, as HOST)
# DIR/host-cli.{crt,key}         client: spiffe://hypmesh/vmid/3 + spiffe://hypmesh/client/cli (a HOST tool, the CLI)
# DIR/guest-128.{crt,key}        client: spiffe://hypmesh/vmid/128
# DIR/rm-client.{crt,key}        client: spiffe://hypmesh/vmid/255 + spiffe://hypmesh/client/rm (the RM calling the core)
# DIR/hyp.{crt,key}              client: spiffe://hypmesh/vmid/0
# DIR/no-identity.{crt,key}      client from the test CA with no hypmesh URI SAN
# DIR/other-ca.crt, DIR/other-host.{crt,key}   a second CA and a HOST client it signed ("another CA")
set -euo pipefail
dir=${1:?usage: make-test-ca.sh DIR}
mkdir -p "$dir"
cd "$dir"
days=1

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null; }

ca() { # name CN
  key "$1"
  openssl req -new -x509 -key "$1.key" -out "$1.crt" -days "$days" -subj "/CN=$2" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
}

leaf() { # name ca usage san
  key "$1"
  openssl req -new -key "$1.key" -subj "/CN=hypmesh-$1" -out "$1.csr"
  printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=%s\nsubjectAltName=%s\n' "$3" "$4" >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$2.crt" -CAkey "$2.key" -CAcreateserial -out "$1.crt" -days "$days" -extfile "$1.ext" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}

ca ca 'hypmesh test CA'
ca other-ca 'another test CA'
for s in core rm vmm; do leaf "$s" ca serverAuth 'DNS:localhost,IP:127.0.0.1'; done
leaf host-vmm ca clientAuth 'URI:spiffe://hypmesh/vmid/3,URI:spiffe://hypmesh/client/vmm'
leaf host-cli ca clientAuth 'URI:spiffe://hypmesh/vmid/3,URI:spiffe://hypmesh/client/cli'
leaf guest-128 ca clientAuth 'URI:spiffe://hypmesh/vmid/128'
leaf rm-client ca clientAuth 'URI:spiffe://hypmesh/vmid/255,URI:spiffe://hypmesh/client/rm'
leaf hyp ca clientAuth 'URI:spiffe://hypmesh/vmid/0'
leaf no-identity ca clientAuth 'DNS:nobody.invalid'
leaf other-host other-ca clientAuth 'URI:spiffe://hypmesh/vmid/3,URI:spiffe://hypmesh/client/vmm'
rm -f ./*.srl
