/**
 * Startup settings a service checks before it serves (fault plan, TLS files, quotas, the OTLP
 * endpoint): a bad one stops the process at once with exit code 2, a usage error as commander
 * reports one, and one fatal log line naming what was wrong, so nothing half-configured serves.
 */
export function orRefuseStartup<T>(log: { fatal(message: string): void }, what: string | undefined, check: () => T): T {
  try {
    return check();
  } catch (e) {
    const reason = e instanceof Error ? e.message : String(e);
    log.fatal(what === undefined ? reason : `${what}: ${reason}`);
    process.exit(2);
  }
}
