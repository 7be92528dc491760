#!/usr/bin/env bash
# Builds a local stand-in for the `node:20-bookworm-slim` base image, for machines that have a Docker
# engine but no image registry (such as hypmesh's own machines: Debian's package mirror and the npm
# registry are reachable, Docker Hub is not). Where Docker Hub is reachable, skip this script: the
# Dockerfile pulls the real image by the same name.
#
# What goes in:
#   - a Debian bookworm root filesystem from debootstrap (--variant=minbase, plus ca-certificates),
#     from the same Debian mirror apt uses here;
#   - this machine's Node.js 20 (binary and its bundled npm and corepack), laid out as the official
#     image lays it out (/usr/local/bin/node, /usr/local/lib/node_modules/{npm,corepack}). Debian
#     bookworm's own `nodejs` package is Node 18, so it cannot stand in for Node 20; the host's Node
#     (NodeSource's build) is dynamically linked only against glibc and libstdc++, which the bookworm
#     rootfs has in the same versions. The script refuses a host Node whose major is not 20;
#   - a `node` user and group with uid/gid 1000 and home /home/node, as in the official image;
#   - the host's locally added CA certificates (/usr/local/share/ca-certificates/*.crt), if any, and
#     NODE_EXTRA_CA_CERTS pointing at the system bundle, so that `npm ci` inside `docker build` trusts
#     the same TLS endpoints the host does (machines behind a TLS-intercepting egress need this). The
#     image stays local; it is never pushed.
#
# The result is tagged `node:20-bookworm-slim` (override with HYPMESH_BASE_IMAGE) and imported with
# `docker import`, so no registry is contacted. Re-running is a no-op while the tag exists; pass
# --force to rebuild.
#
# Needs: root, debootstrap (apt-get install debootstrap), a running Docker engine, node 20 on PATH.
# Takes about a minute (the debootstrap download dominates).
set -euo pipefail

tag="${HYPMESH_BASE_IMAGE:-node:20-bookworm-slim}"
mirror="${HYPMESH_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
force=0
[[ "${1:-}" == "--force" ]] && force=1

if [[ $force -eq 0 ]] && docker image inspect "$tag" >/dev/null 2>&1; then
  echo "make-base-image: $tag already exists (use --force to rebuild)"
  exit 0
fi

command -v debootstrap >/dev/null || { echo "make-base-image: debootstrap not found (apt-get install debootstrap)" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || { echo "make-base-image: debootstrap needs root" >&2; exit 1; }

node_bin="$(readlink -f "$(command -v node)")"
node_version="$("$node_bin" --version)"
[[ "$node_version" == v20.* ]] || { echo "make-base-image: host node is $node_version, need v20.x" >&2; exit 1; }
# npm and corepack ship beside the node binary: <prefix>/bin/node and <prefix>/lib/node_modules.
node_prefix="$(dirname "$(dirname "$node_bin")")"
node_modules="$node_prefix/lib/node_modules"
[[ -d "$node_modules/npm" ]] || { echo "make-base-image: npm not found in $node_modules" >&2; exit 1; }

work="$(mktemp -d "${TMPDIR:-/var/tmp}/hypmesh-base.XXXXXX")"
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"

start=$SECONDS
echo "make-base-image: debootstrap bookworm from $mirror"
debootstrap --variant=minbase --include=ca-certificates bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || {
  tail -30 "$work/debootstrap.log" >&2
  exit 1
}

echo "make-base-image: adding node $node_version from $node_prefix"
install -D -m 0755 "$node_bin" "$rootfs/usr/local/bin/node"
mkdir -p "$rootfs/usr/local/lib/node_modules"
for pkg in npm corepack; do
  [[ -d "$node_modules/$pkg" ]] && cp -a "$node_modules/$pkg" "$rootfs/usr/local/lib/node_modules/"
done
# Node's headers, where the official image has them: node-gyp builds native addons (better-sqlite3,
# the services' --data-dir) against the running node's include/node instead of downloading them.
if [[ -d "$node_prefix/include/node" ]]; then
  mkdir -p "$rootfs/usr/local/include"
  cp -a "$node_prefix/include/node" "$rootfs/usr/local/include/"
fi
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
[[ -d "$rootfs/usr/local/lib/node_modules/corepack" ]] &&
  ln -sf ../lib/node_modules/corepack/dist/corepack.js "$rootfs/usr/local/bin/corepack"

chroot "$rootfs" groupadd --gid 1000 node
chroot "$rootfs" useradd --uid 1000 --gid node --shell /bin/bash --create-home node

extra_ca_env=()
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  echo "make-base-image: trusting the host's local CA certificates"
  cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
  chroot "$rootfs" update-ca-certificates >/dev/null 2>&1
  extra_ca_env=(--change "ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt")
fi

# The node binary must run in the rootfs as it is (same glibc/libstdc++ as bookworm).
got="$(chroot "$rootfs" /usr/local/bin/node --version)"
[[ "$got" == "$node_version" ]] || { echo "make-base-image: node does not run in the rootfs ($got)" >&2; exit 1; }

# Slim it as the -slim images do: no apt lists, docs, man pages or caches.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
  "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/tmp/* \
  "$rootfs"/root/.npm

echo "make-base-image: importing as $tag"
tar -C "$rootfs" --numeric-owner -c . | docker import \
  --message "hypmesh local base: debootstrap bookworm + host node $node_version (scripts/make-base-image.sh)" \
  --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  --change "ENV NODE_VERSION=${node_version#v}" \
  "${extra_ca_env[@]}" \
  --change 'CMD ["node"]' \
  - "$tag" >/dev/null
docker image ls "$tag"
echo "make-base-image: done in $((SECONDS - start))s"
