#!/usr/bin/env bash
# Generates the Go and Python client stubs from proto/ (README "Clients"), installing what it needs
# into the project-local .tools/ first, so it works on a fresh machine with Node, Go and Python 3:
#   .tools/bin/protoc-gen-go, protoc-gen-go-grpc   `go install` through the Go module proxy, pinned
#                                                  to the versions clients/go/go.mod requires;
#   .tools/venv                                    a venv with grpcio-tools (the Python generators)
#                                                  and the hypmesh package installed editable.
# Then `buf generate --template buf.gen.clients.yaml` (buf from npm, as for the TypeScript build).
# The stubs are not committed (.gitignore): the protos change often, and a stale copy would
# disagree with the services silently.
set -euo pipefail
cd "$(dirname "$0")/.."

protobuf_go=v1.36.12    # google.golang.org/protobuf, as clients/go/go.mod
grpc_go_plugin=v1.6.2   # google.golang.org/grpc/cmd/protoc-gen-go-grpc

say() { echo "clients-generate: $*"; }

# Go: Debian's golang-go if the machine has no Go (root + apt), as scripts/install-toxiproxy.sh.
# The module needs Go 1.26; a Go from 1.21 on fetches that toolchain itself (GOTOOLCHAIN=auto).
if ! command -v go >/dev/null; then
  if [[ -x /usr/local/go/bin/go ]]; then
    export PATH="/usr/local/go/bin:$PATH"
  elif [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    say "installing Debian's golang-go"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends golang-go ca-certificates >/dev/null
  else
    say "no go toolchain, and cannot install one" >&2
    exit 1
  fi
fi
mkdir -p .tools/bin
bin="$PWD/.tools/bin"
want_go="protoc-gen-go $protobuf_go"
if [[ ! -x $bin/protoc-gen-go ]] || [[ $("$bin/protoc-gen-go" --version 2>/dev/null) != "$want_go" ]]; then
  say "go install protoc-gen-go@$protobuf_go ($(go version))"
  GOBIN="$bin" go install "google.golang.org/protobuf/cmd/protoc-gen-go@$protobuf_go"
fi
if [[ ! -x $bin/protoc-gen-go-grpc ]] || [[ $("$bin/protoc-gen-go-grpc" --version 2>/dev/null) != "protoc-gen-go-grpc ${grpc_go_plugin#v}" ]]; then
  say "go install protoc-gen-go-grpc@$grpc_go_plugin"
  GOBIN="$bin" go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$grpc_go_plugin"
fi

# Python: a venv with the generators and the package (editable, with its test extra).
if [[ ! -x .tools/venv/bin/python ]]; then
  if ! python3 -m venv .tools/venv 2>/dev/null; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
      say "installing Debian's python3-venv"
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq
      apt-get install -y -qq --no-install-recommends python3-venv python3-pip >/dev/null
      rm -rf .tools/venv
      python3 -m venv .tools/venv
    else
      say "python3 cannot make a venv (install python3-venv)" >&2
      exit 1
    fi
  fi
fi
if ! .tools/venv/bin/python -c 'import grpc_tools, pytest, grpc_status' 2>/dev/null; then
  say "pip install grpcio-tools and the hypmesh package's dependencies into .tools/venv"
  .tools/venv/bin/pip install --quiet --upgrade pip
  .tools/venv/bin/pip install --quiet 'grpcio-tools>=1.66' 'grpcio>=1.66' 'grpcio-status>=1.66' 'googleapis-common-protos>=1.63' 'protobuf>=5.27' 'pytest>=8'
fi

# Stale stubs of a proto that was removed must not linger: clear both outputs first.
rm -rf clients/go/gen
find clients/python/src/hypmesh -mindepth 1 -maxdepth 1 -type d -exec test -d '{}/v1' ';' -exec rm -rf '{}' +
npx buf generate --template buf.gen.clients.yaml
# Installed after generation: the editable install finds the generated packages.
if ! .tools/venv/bin/pip show --quiet hypmesh 2>/dev/null; then
  .tools/venv/bin/pip install --quiet --no-deps -e clients/python
fi
say "generated clients/go/gen and clients/python/src/hypmesh/*/v1 ($(find clients/go/gen -name '*.go' | wc -l) Go files, $(find clients/python/src/hypmesh -name '*_pb2*.py' | wc -l) Python modules)"
