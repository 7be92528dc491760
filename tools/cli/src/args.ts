/** Argument parsers for the CLI's options: integers, byte counts with units, R/W/X rights. */
import { InvalidArgumentError } from 'commander';

export const integer = (text: string): number => {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError('expected a non-negative integer (decimal or 0x…)');
  return n;
};

export const bytes = (text: string): bigint => {
  const m = /^(0x[0-9a-f]+|\d+)([kmgt]i?b?)?$/i.exec(text.trim());
  if (m === null) throw new InvalidArgumentError('expected bytes, e.g. 0x80000000, 4096, 2GiB');
  const unit = { k: 10n, m: 20n, g: 30n, t: 40n }[(m[2] ?? '').charAt(0).toLowerCase() as 'k'] ?? 0n;
  return BigInt(m[1]!) << unit;
};

/** "rwx", "rw", "r-x", "RW-" → the rights as three booleans (at least one). */
export const rightsArg = (text: string): { allowRead: boolean; allowWrite: boolean; allowExec: boolean } => {
  const t = text.trim().toLowerCase();
  if (!/^[rwx-]{1,3}$/.test(t) || !/[rwx]/.test(t) || new Set(t.replace(/-/g, '')).size !== t.replace(/-/g, '').length)
    throw new InvalidArgumentError('expected rights as letters r, w, x (e.g. rwx, rw, r-x)');
  return { allowRead: t.includes('r'), allowWrite: t.includes('w'), allowExec: t.includes('x') };
};
