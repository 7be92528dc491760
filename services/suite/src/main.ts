#!/usr/bin/env node
/**
 * hypmesh embedded (`npm start`): the core and the resource manager in one process, each its own
 * gRPC server, the RM reaching the core over real gRPC on loopback exactly as it would across
 * containers. Prints where each listens; SIGTERM/SIGINT stops them in reverse order.
 */

import { Command, Option } from 'commander';
import { pino } from 'pino';
import { startCoreServer } from '@hypmesh/core-service';
import { grpcCore, startRmServer } from '@hypmesh/rm-service';

const SHUTDOWN_GRACE_MS = 5_000;

const opts = new Command('hypmesh')
  .description('Every hypmesh service in one process, over real gRPC on loopback.')
  .addOption(new Option('--core-address <host:port>', 'core listen address').env('HYPMESH_CORE_ADDR').default('127.0.0.1:50051'))
  .addOption(new Option('--rm-address <host:port>', 'resource manager listen address').env('HYPMESH_RM_ADDR').default('127.0.0.1:50052'))
  .addOption(new Option('--check-invariants', 'check every core invariant after each mutation').env('HYPMESH_CHECK_INVARIANTS').default(false))
  .addOption(new Option('--log-level <level>', 'pino log level').env('HYPMESH_LOG_LEVEL').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info'))
  .parse()
  .opts<{ coreAddress: string; rmAddress: string; checkInvariants: boolean; logLevel: string }>();

const log = pino({ name: 'hypmesh', level: opts.logLevel });

try {
  const core = await startCoreServer({ address: opts.coreAddress, log, checkInvariants: opts.checkInvariants });
  const coreTarget = `${opts.coreAddress.replace(/:\d+$/, '')}:${core.port}`.replace(/^0\.0\.0\.0:/, '127.0.0.1:');
  const coreClient = grpcCore(coreTarget);
  const rm = await startRmServer({ address: opts.rmAddress, core: coreClient, log });
  log.info({ core: coreTarget, rm: `${opts.rmAddress.replace(/:\d+$/, '')}:${rm.port}` }, 'hypmesh serving');
  process.stdout.write(`hypmesh core   listening on ${coreTarget} (hypmesh.core.v1.CoreService)\n`);
  process.stdout.write(`hypmesh rm     listening on ${opts.rmAddress.replace(/:\d+$/, '')}:${rm.port} (hypmesh.rm.v1.RmService)\n`);
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) process.exit(1);
    stopping = true;
    log.info({ signal }, 'shutting down');
    void rm
      .shutdown(SHUTDOWN_GRACE_MS)
      .then(() => coreClient.close())
      .then(() => core.shutdown(SHUTDOWN_GRACE_MS))
      .then(() => process.exit(0));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
} catch (e) {
  log.fatal({ err: e }, 'hypmesh failed to start');
  process.exit(1);
}
