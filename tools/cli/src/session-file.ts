/**
 * Where the CLI keeps its VMM lease session between commands: one line, the session id, in
 * $HYPMESH_SESSION_FILE (default ~/.hypmesh/session), readable by its owner only. Each VM command
 * names that session, which renews its lease; `hypmesh session close` ends it and removes the file.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';

/** The lease the CLI opens: the VMM's longest (an hour past the last command), so VMs survive a coffee break. */
export const SESSION_TTL_MS = 3_600_000;

export const sessionFilePath = (): string => process.env.HYPMESH_SESSION_FILE || join(homedir(), '.hypmesh', 'session');

/** The session id in the file, or undefined when there is none. */
export function readSessionId(path = sessionFilePath()): string | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  const id = text.trim();
  return id.length > 0 ? id : undefined;
}

export function writeSessionId(id: string, path = sessionFilePath()): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  writeFileSync(path, `${id}\n`, { mode: 0o600 });
}

export function removeSessionFile(path = sessionFilePath()): void {
  rmSync(path, { force: true });
}
