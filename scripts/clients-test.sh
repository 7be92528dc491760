#!/usr/bin/env bash
# The Python and Go clients' tests (README "Clients") against a running hypmesh: generates the
# stubs (scripts/clients-generate.sh installs what it needs into .tools/), starts `npm start`'s
# suite (services/suite/dist/main.js: core, RM and VMM in one process over loopback gRPC) on
# ephemeral 127.0.0.1 ports, runs pytest, then `go test`, both against that one system (their tests
# use disjoint host memory), and stops it. Assumes `npm run build` has run (CI's order); builds if
# the suite is not built yet.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
command -v go >/dev/null || export PATH="/usr/local/go/bin:$PATH"

bash scripts/clients-generate.sh
[[ -f services/suite/dist/main.js ]] || npm run build

log="$(mktemp)"
node services/suite/dist/main.js --core-address 127.0.0.1:0 --rm-address 127.0.0.1:0 --vmm-address 127.0.0.1:0 \
  --check-invariants --log-level warn >"$log" 2>&1 &
suite=$!
stop() {
  # SIGTERM drains: the VMM tears down what is left while the RM and the core still answer.
  kill -TERM "$suite" 2>/dev/null && wait "$suite" 2>/dev/null || true
}
trap 'stop; rm -f "$log"' EXIT

# The suite prints one line per service: `hypmesh core   listening on 127.0.0.1:PORT (...)`.
address() { sed -n "s/^hypmesh $1 *listening on \([^ ]*\) .*/\1/p" "$log"; }
for _ in $(seq 1 300); do
  [[ -n $(address vmm) ]] && break
  kill -0 "$suite" 2>/dev/null || { cat "$log" >&2; echo "clients-test: the suite exited" >&2; exit 1; }
  sleep 0.1
done
[[ -n $(address vmm) ]] || { cat "$log" >&2; echo "clients-test: the suite did not start within 30 s" >&2; exit 1; }
# The clients dial these (the CLI's variables too).
HYPMESH_CORE_ADDR="$(address core)"
HYPMESH_RM_ADDR="$(address rm)"
HYPMESH_VMM_ADDR="$(address vmm)"
export HYPMESH_CORE_ADDR HYPMESH_RM_ADDR HYPMESH_VMM_ADDR
echo "clients-test: hypmesh at core $HYPMESH_CORE_ADDR, rm $HYPMESH_RM_ADDR, vmm $HYPMESH_VMM_ADDR"

echo "clients-test: pytest clients/python"
.tools/venv/bin/python -m pytest -q -p no:cacheprovider clients/python
echo "clients-test: go test clients/go"
(cd clients/go && go vet ./... && go test -count=1 ./...)

# The core checked its invariants after every mutation: a violation is a failure even if every
# client assertion held.
if grep -q 'invariant violated' "$log"; then
  grep 'invariant violated' "$log" >&2
  echo "clients-test: the core logged invariant violations" >&2
  exit 1
fi
echo "clients-test: passed in $((SECONDS - start)) s"
