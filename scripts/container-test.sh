#!/usr/bin/env bash
# The containers end to end, on a machine with no image registry and no bridge network (hypmesh's
# own machines; works anywhere with root and a Debian-like apt):
#
#   1. a Docker engine: the running one, or Debian's docker.io started here as
#      `dockerd --bridge=none --iptables=false --ip6tables=false` (installed with apt if missing);
#   2. the base image node:20-bookworm-slim: the local one, or built by scripts/make-base-image.sh;
#   3. the service images, built by Compose from the Dockerfile (host networking for `npm ci`);
#   4. the stack up with docker-compose.host-network.yml, health-gated (rm waits for the core, vmm
#      for both), until all three are healthy;
#   5. test/containers.test.ts against it (HYPMESH_CONTAINER_TEST=1): health through the image's
#      probe and reflection on each service, a parcel shared through the RM and mapped in the core,
#      and a GUNYAH VM's life through the VMM with all memory back with the host at the core;
#   6. a graceful stop (SIGTERM; each service must exit 0 within its grace), then `down`.
# Everything it started (containers, and the engine if it started one) is stopped on exit.
#
# Env: HYPMESH_CORE_PORT / HYPMESH_RM_PORT / HYPMESH_VMM_PORT (host ports, default 50151 / 50152 /
# 50153, so that services running on the default ports are not in the way), HYPMESH_TAG (image tag,
# default ctest).
set -euo pipefail
cd "$(dirname "$0")/.."

export HYPMESH_CORE_PORT="${HYPMESH_CORE_PORT:-50151}" HYPMESH_RM_PORT="${HYPMESH_RM_PORT:-50152}" HYPMESH_VMM_PORT="${HYPMESH_VMM_PORT:-50153}"
services=(core rm vmm)
export HYPMESH_TAG="${HYPMESH_TAG:-ctest}"
project=hypmesh-ctest
t0=$SECONDS
step() { echo "container-test [$((SECONDS - t0))s]: $*"; }
# A machine where no Docker engine can be had (no apt, no privileges for dockerd) skips the test,
# saying why; once an engine runs, every failure is a failure.
skip() {
  echo "container-test: SKIPPED — no Docker engine on this machine: $*" >&2
  exit 0
}

need_apt=()
command -v dockerd >/dev/null || need_apt+=(docker.io)
command -v debootstrap >/dev/null || need_apt+=(debootstrap)
docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null || need_apt+=(docker-compose)
if [[ ${#need_apt[@]} -gt 0 ]]; then
  step "installing ${need_apt[*]} (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || skip "apt-get update failed"
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null || skip "apt-get install ${need_apt[*]} failed"
fi
if docker compose version >/dev/null 2>&1; then compose=(docker compose); else compose=(docker-compose); fi
compose+=(-p "$project" -f docker-compose.yml -f docker-compose.host-network.yml)

logdir="$(mktemp -d "${TMPDIR:-/tmp}/hypmesh-ctest.XXXXXX")"
dockerd_pid=""
cleanup() {
  local rc=$?
  if [[ $rc -ne 0 ]] && docker info >/dev/null 2>&1; then
    echo "container-test: failed; container logs:" >&2
    "${compose[@]}" logs --no-color 2>/dev/null | tail -40 >&2 || true
  fi
  "${compose[@]}" down --volumes --remove-orphans --timeout 10 >/dev/null 2>&1 || true
  if [[ -n "$dockerd_pid" ]]; then
    kill "$dockerd_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.2; done
    [[ $rc -ne 0 ]] && tail -20 "$logdir/dockerd.log" >&2
  fi
  rm -rf "$logdir"
  exit $rc
}
trap cleanup EXIT

if ! docker info >/dev/null 2>&1; then
  step "starting dockerd (--bridge=none --iptables=false)"
  dockerd --bridge=none --iptables=false --ip6tables=false >"$logdir/dockerd.log" 2>&1 &
  dockerd_pid=$!
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  if ! docker info >/dev/null 2>&1; then
    tail -5 "$logdir/dockerd.log" >&2
    kill "$dockerd_pid" 2>/dev/null || true
    dockerd_pid=""
    skip "dockerd did not come up (log above)"
  fi
fi

step "base image"
bash scripts/make-base-image.sh

step "building the service images"
b0=$SECONDS
"${compose[@]}" build >"$logdir/build.log" 2>&1 || { tail -40 "$logdir/build.log" >&2; exit 1; }
step "images built in $((SECONDS - b0))s: $(docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep ":$HYPMESH_TAG" | tr '\n' ' ')"

step "stack up (rm waits for a healthy core, vmm for both)"
u0=$SECONDS
"${compose[@]}" up -d --no-build
healthy() {
  local id
  id="$("${compose[@]}" ps -q "$1")"
  [[ -n "$id" && "$(docker inspect -f '{{.State.Health.Status}}' "$id")" == healthy ]]
}
all_healthy() { for s in "${services[@]}"; do healthy "$s" || return 1; done; }
for _ in $(seq 120); do all_healthy && break; sleep 0.5; done
all_healthy || { echo "container-test: the stack did not become healthy" >&2; "${compose[@]}" ps >&2; exit 1; }
step "stack healthy in $((SECONDS - u0))s"
"${compose[@]}" ps

step "test/containers.test.ts"
HYPMESH_CONTAINER_TEST=1 HYPMESH_TEST_CORE_ADDR="127.0.0.1:$HYPMESH_CORE_PORT" HYPMESH_TEST_RM_ADDR="127.0.0.1:$HYPMESH_RM_PORT" \
  HYPMESH_TEST_VMM_ADDR="127.0.0.1:$HYPMESH_VMM_PORT" npx vitest run test/containers.test.ts

step "graceful stop"
s0=$SECONDS
ids=()
for s in "${services[@]}"; do ids+=("$("${compose[@]}" ps -q "$s")"); done
"${compose[@]}" stop --timeout 10
for id in "${ids[@]}"; do
  code="$(docker inspect -f '{{.State.ExitCode}} {{.Name}}' "$id")"
  [[ "$code" == 0\ * ]] || { echo "container-test: not a clean exit on SIGTERM: $code" >&2; exit 1; }
done
step "stopped cleanly (exit 0) in $((SECONDS - s0))s"
"${compose[@]}" down --volumes --remove-orphans >/dev/null 2>&1
step "done"
