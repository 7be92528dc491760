#!/usr/bin/env bash
# Installs one Go command into the project-local .tools/bin, if it is not there:
#   scripts/install-go-tool.sh NAME MODULE/PATH@VERSION
# (the binary is installed as .tools/bin/NAME). It is built from source with `go install` through the
# Go module proxy: the project's machines reach no release downloads. Go comes from the machine,
# else from Debian's golang-go (root + apt); a Go from 1.21 on fetches a newer toolchain a module
# needs itself (GOTOOLCHAIN), an older one fails here saying so. Versions are pinned by the
# callers, so that every machine builds the same tool.
set -euo pipefail
cd "$(dirname "$0")/.."

name=$1
package=$2
bin=.tools/bin/$name
if [[ -x $bin ]]; then
  echo "install-go-tool: $bin present"
  exit 0
fi
if ! command -v go >/dev/null; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "install-go-tool: installing Debian's golang-go"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends golang-go ca-certificates >/dev/null
  else
    echo "install-go-tool: no go toolchain, and cannot install one" >&2
    exit 1
  fi
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "install-go-tool: go install $package ($(go version))"
GOBIN="$tmp" go install "$package"
mkdir -p "$(dirname "$bin")"
built=${package%@*}
mv "$tmp/${built##*/}" "$bin"
echo "install-go-tool: installed $bin"
