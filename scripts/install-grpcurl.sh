#!/usr/bin/env bash
# Installs grpcurl, the reference command-line reflection client, as .tools/bin/grpcurl:
# test/reflection-health.e2e.test.ts checks that `grpcurl describe` shows the proto comments and the
# RM's (hypmesh.rm.v1.message_id) option, as a user's grpcurl would.
exec "$(dirname "$0")/install-go-tool.sh" grpcurl github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.3
