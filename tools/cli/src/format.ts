/** Plain-text output for the CLI: aligned tables, sizes with binary units, R/W/X rights, VMIDs, ownership runs. */
import { GranuleState, PageState, type OwnershipRun } from '@hypmesh/proto';

export function table(header: readonly string[], rows: readonly (readonly string[])[]): void {
  if (rows.length === 0) {
    process.stdout.write('(none)\n');
    return;
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  process.stdout.write(`${line(header)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}\n`);
  for (const r of rows) process.stdout.write(`${line(r)}\n`);
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'] as const;

/** 4096n → "4 KiB", 3n << 30n → "3 GiB", 6144n → "6 KiB" (whole units where exact, else one decimal). */
export function formatBytes(n: bigint): string {
  let unit = 0;
  let value = Number(n);
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${Number.isInteger(value) ? value : value.toFixed(1)} ${UNITS[unit]}`;
}

/** Rights bits X = 1, W = 2, R = 4 (Gunyah ACLs and kvm_pgtable_prot) as "RW-". */
export const rights = (bits: number): string => `${bits & 4 ? 'R' : '-'}${bits & 2 ? 'W' : '-'}${bits & 1 ? 'X' : '-'}`;

/** HYP, HOST, RM by name; guests as 0x80…. */
export const vmidName = (v: number): string => (v === 0 ? 'HYP' : v === 3 ? 'HOST' : v === 0xff ? 'RM' : `0x${v.toString(16)}`);

const PAGE = 4096n;

/** The core's ownership map (OwnershipMap runs) as a table: physical range, owner, each view. */
export function ownershipTable(runs: readonly OwnershipRun[]): void {
  table(
    ['physical range', 'size', 'owner', 'host', 'hyp', 'granule', 'grant'],
    runs.map((x) => [
      `0x${(x.base * PAGE).toString(16)}-0x${((x.base + x.count) * PAGE - 1n).toString(16)}`,
      formatBytes(x.count * PAGE),
      vmidName(x.ownerVmid),
      PageState[x.hostState].replace('PAGE_STATE_', ''),
      PageState[x.hypState].replace('PAGE_STATE_', ''),
      GranuleState[x.granuleState].replace('GRANULE_STATE_', ''),
      x.grantId === 0n ? '' : String(x.grantId),
    ]),
  );
}
