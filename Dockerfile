# hypmesh: one image per service, all built from one build stage (DESIGN.md §1: "one container per
# service"; grpc-ecosystem.md §5). Targets:
#
#   core   node services/core/dist/main.js   listens on 0.0.0.0:50051 (HYPMESH_CORE_LISTEN)
#   rm     node services/rm/dist/main.js     listens on 0.0.0.0:50052 (HYPMESH_RM_LISTEN), reaches the
#                                            core at HYPMESH_CORE_ADDR (default core:50051)
#   vmm    node services/vmm/dist/main.js    listens on 0.0.0.0:50053 (HYPMESH_VMM_LISTEN), reaches the
#                                            RM at HYPMESH_RM_ADDR (default rm:50052) as HLOS and the
#                                            core at HYPMESH_CORE_ADDR (default core:50051) as HOST
#   sim    node tools/cli/dist/main.js sim   the deterministic simulation (no port; deploy/k8s)
#
#   docker build --target core -t hypmesh/core .      (or: docker compose build)
#
# Base image: node:20-bookworm-slim, pulled from Docker Hub where it is reachable. On a machine with
# an engine but no registry, scripts/make-base-image.sh builds a local image under that same tag
# from a debootstrap bookworm rootfs and the machine's Node 20, and this file works unchanged.
# Another base can be chosen with --build-arg NODE_IMAGE=... (it must have node 20 and npm, and a
# non-root `node` user, uid 1000). The file uses no BuildKit-only syntax, so the classic builder
# (the only one with no registry access: BuildKit's `# syntax=` frontends are images) builds it too.
ARG NODE_IMAGE=node:20-bookworm-slim

# --- manifests: only package.json files and the lock, so `npm ci` below stays cached while the
# sources change (COPY is cached by content, so this stage re-running costs nothing downstream).
FROM ${NODE_IMAGE} AS manifests
COPY . /src
RUN mkdir /manifests && cd /src \
 && find . -name package.json -not -path '*/node_modules/*' -exec cp --parents {} /manifests/ \; \
 && cp package-lock.json /manifests/

# --- build: every workspace, once. buf and ts-proto come from npm (devDependencies): no protoc.
FROM ${NODE_IMAGE} AS build
# better-sqlite3 (@hypmesh/journal, the services' --data-dir) compiles its native addon during
# `npm ci` when no prebuilt binary can be fetched: python3, make and g++ are needed here only.
# node-gyp builds against the image's own Node headers (/usr/local/include/node, in the official
# image and in scripts/make-base-image.sh's) rather than downloading them, which a build without
# internet access cannot.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
ENV npm_config_nodedir=/usr/local
WORKDIR /app
COPY --from=manifests /manifests/ ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build \
 && npm prune --omit=dev --no-audit --no-fund \
 && find packages services -mindepth 2 -maxdepth 2 \
      \( -name src -o -name 'tsconfig*.json' -o -name '*.tsbuildinfo' \) -exec rm -rf {} + \
 && find packages services -path '*/dist/*' \( -name '*.test.js' -o -name '*.test.d.ts' -o -name '*.test.js.map' \) -delete

# --- runtime: what every service image shares. Files stay root-owned; the process runs as the
# unprivileged `node` user and writes only to /data, the data dir compose mounts a volume on
# (HYPMESH_DATA_DIR; a fresh named volume takes the directory's owner from the image).
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/proto ./proto
COPY --from=build /app/packages ./packages
COPY scripts/health-probe.mjs ./scripts/health-probe.mjs
RUN mkdir /data && chown node:node /data
USER node

# --- core: hypmesh.core.v1.CoreService + grpc.health.v1 + reflection.
FROM runtime AS core
COPY --from=build /app/services/core ./services/core
ENV HYPMESH_CORE_LISTEN=0.0.0.0:50051
EXPOSE 50051
HEALTHCHECK --interval=5s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/node", "/app/scripts/health-probe.mjs", "--addr=127.0.0.1:50051", "--service=hypmesh.core.v1.CoreService"]
CMD ["/usr/local/bin/node", "services/core/dist/main.js"]

# --- rm: hypmesh.rm.v1.RmService + grpc.health.v1 + reflection; needs a core.
FROM runtime AS rm
COPY --from=build /app/services/rm ./services/rm
ENV HYPMESH_RM_LISTEN=0.0.0.0:50052 \
    HYPMESH_CORE_ADDR=core:50051
EXPOSE 50052
HEALTHCHECK --interval=5s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/node", "/app/scripts/health-probe.mjs", "--addr=127.0.0.1:50052", "--service=hypmesh.rm.v1.RmService"]
CMD ["/usr/local/bin/node", "services/rm/dist/main.js"]

# --- vmm: hypmesh.vmm.v1.VmmService + grpc.health.v1 + reflection; needs the RM and the core. It
# must be HLOS's only RM subscriber (services/vmm/src/rm-client.ts).
FROM runtime AS vmm
COPY --from=build /app/services/vmm ./services/vmm
ENV HYPMESH_VMM_LISTEN=0.0.0.0:50053 \
    HYPMESH_RM_ADDR=rm:50052 \
    HYPMESH_CORE_ADDR=core:50051
EXPOSE 50053
HEALTHCHECK --interval=5s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/node", "/app/scripts/health-probe.mjs", "--addr=127.0.0.1:50053", "--service=hypmesh.vmm.v1.VmmService"]
CMD ["/usr/local/bin/node", "services/vmm/dist/main.js"]

# --- sim: `hypmesh sim` runs and campaigns (README "Deterministic simulation"; the Indexed Job
# deploy/k8s/sim-campaign.yaml). Pure computation: no port, no other service. Arguments after the
# image are `hypmesh sim` flags: docker run --rm hypmesh/sim --seeds 0..99 --steps 10000.
FROM runtime AS sim
COPY --from=build /app/services ./services
COPY --from=build /app/tools/cli ./tools/cli
ENTRYPOINT ["/usr/local/bin/node", "tools/cli/dist/main.js", "sim"]
