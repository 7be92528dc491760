#!/usr/bin/env bash
# Installs Toxiproxy's server (the network-fault proxy test/toxiproxy.e2e.test.ts puts on every
# service-to-service link) into the project-local .tools/bin/toxiproxy-server, if it is not there.
# It is built from source with `go install` through the Go module proxy: the project's machines
# reach no release downloads. Go comes from the machine, else from Debian's golang-go (root + apt).
# The pinned version needs Go 1.23: a Go from 1.21 on fetches that toolchain itself (GOTOOLCHAIN),
# an older one (bookworm's golang-go is 1.19) fails here saying so. Pinned, so that every machine
# builds the same proxy.
set -euo pipefail
cd "$(dirname "$0")/.."

version=v2.12.0
bin=.tools/bin/toxiproxy-server
if [[ -x $bin ]]; then
  echo "install-toxiproxy: $bin present ($("$bin" -version 2>/dev/null | head -1))"
  exit 0
fi
if ! command -v go >/dev/null; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "install-toxiproxy: installing Debian's golang-go"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends golang-go ca-certificates >/dev/null
  else
    echo "install-toxiproxy: no go toolchain, and cannot install one" >&2
    exit 1
  fi
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "install-toxiproxy: go install github.com/Shopify/toxiproxy/v2/cmd/server@$version ($(go version))"
GOBIN="$tmp" go install "github.com/Shopify/toxiproxy/v2/cmd/server@$version"
mkdir -p "$(dirname "$bin")"
mv "$tmp/server" "$bin"
echo "install-toxiproxy: installed $bin"
