#!/usr/bin/env bash
# Installs Toxiproxy's server (the network-fault proxy test/toxiproxy.e2e.test.ts puts on every
# service-to-service link) as .tools/bin/toxiproxy-server. The pinned version needs Go 1.23
# (bookworm's golang-go is 1.19: a machine with only that fails here, saying so).
exec "$(dirname "$0")/install-go-tool.sh" toxiproxy-server github.com/Shopify/toxiproxy/v2/cmd/server@v2.12.0
