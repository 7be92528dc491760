#!/usr/bin/env bash
# Validates the compose files with Compose itself (`config -q`: YAML, the Compose schema, variable
# interpolation, the merge of override files), in both ways they are used:
#   docker-compose.yml + docker-compose.override.yml   (the default: `docker compose up`)
#   docker-compose.yml + docker-compose.host-network.yml (engines without a bridge network)
#   the same two with the `chaos` profile's env file (Toxiproxy on every service-to-service link)
# and checks that every build target they name is a stage of the Dockerfile.
#
# Compose used: `docker compose` (v2 plugin) if present, else `docker-compose`. If neither is there
# and we are root with apt (a fresh Debian CI machine), Debian's docker-compose (1.29, Python) is
# installed: about 20 s, it pulls in docker.io's client and engine packages but starts nothing. No
# engine is needed to validate. (Debian bookworm packages no Compose v2; a schema-only check through
# an npm JSON-schema package would skip interpolation and merging, so Compose itself is used.)
set -euo pipefail
cd "$(dirname "$0")/.."

if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
elif command -v docker-compose >/dev/null; then
  compose=(docker-compose)
elif [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
  echo "compose-check: installing Debian's docker-compose"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
  compose=(docker-compose)
else
  echo "compose-check: no docker compose / docker-compose, and cannot install one" >&2
  exit 1
fi
echo "compose-check: $("${compose[@]}" version 2>/dev/null | head -1)"

# Fixed values for the variables the files interpolate, so the check does not depend on the caller's.
export HYPMESH_TAG=check HYPMESH_LOG_LEVEL=info HYPMESH_CORE_PORT=50051 HYPMESH_RM_PORT=50052
"${compose[@]}" -f docker-compose.yml -f docker-compose.override.yml config -q
"${compose[@]}" -f docker-compose.yml -f docker-compose.host-network.yml config -q

# The default set must publish ports; the host-network set must not (see docker-compose.yml).
default_cfg="$("${compose[@]}" -f docker-compose.yml -f docker-compose.override.yml config)"
host_cfg="$("${compose[@]}" -f docker-compose.yml -f docker-compose.host-network.yml config)"
grep -q '50051:50051' <<<"$default_cfg" || { echo "compose-check: the default files publish no core port" >&2; exit 1; }
if grep -qE '^[[:space:]]+ports:' <<<"$host_cfg"; then
  echo "compose-check: the host-network files publish ports" >&2
  exit 1
fi

# The chaos profile: Toxiproxy is in, and the RM and the VMM dial every dependency through it; no
# profile, no detour: the default set dials directly, and Toxiproxy is only in the chaos profile
# (so the default stack never needs its image).
chaos_cfg="$("${compose[@]}" --env-file deploy/toxiproxy/chaos.env -f docker-compose.yml -f docker-compose.override.yml config)"
for want in 'toxiproxy:50061' 'toxiproxy:50062' 'toxiproxy:50063' 'ghcr.io/shopify/toxiproxy' '127.0.0.1:8474:8474'; do
  grep -q "$want" <<<"$chaos_cfg" || { echo "compose-check: the chaos profile's config lacks $want" >&2; exit 1; }
done
if grep -q 'toxiproxy:5006' <<<"$default_cfg" || ! grep -A20 '^  toxiproxy:' <<<"$default_cfg" | grep -qE '^    profiles:'; then
  echo "compose-check: the default files route through Toxiproxy, or it is not in a profile" >&2
  exit 1
fi

stages="$(sed -nE 's/^FROM[[:space:]]+[^[:space:]]+[[:space:]]+AS[[:space:]]+([A-Za-z0-9_.-]+).*/\1/ip' Dockerfile)"
for target in $(sed -nE 's/^[[:space:]]+target:[[:space:]]*([A-Za-z0-9_.-]+).*/\1/p' docker-compose*.yml | sort -u); do
  grep -qx "$target" <<<"$stages" || { echo "compose-check: build target '$target' is not a Dockerfile stage" >&2; exit 1; }
done
echo "compose-check: docker-compose.yml with its override, with the host-network override, and with the chaos profile: valid"
