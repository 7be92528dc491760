/**
 * authz.ts: the one authorisation table agrees with the requireCaller rules the services apply
 * today (read from their source, so a rule changed in one place and not the other fails here), and
 * covers every RPC of every service.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as grpc from '@grpc/grpc-js';
import { CORE_SERVICE_NAME, CoreServiceService } from '@hypmesh/proto';
import { FAULT_SERVICE_NAME, FaultServiceService } from '@hypmesh/proto/fault';
import { RM_SERVICE_NAME, RmServiceService } from '@hypmesh/proto/rm';
import { VMM_SERVICE_NAME, VmmServiceService } from '@hypmesh/proto/vmm';
import { describe, expect, test } from 'vitest';
import { principal } from './admission.js';
import { AUTHZ_TABLE, authorize, isOpen, TABLE_ONLY, type AuthzTable } from './authz.js';

const SERVICES_DIR = fileURLToPath(new URL('../../../services/', import.meta.url));
const SERVICE_OF_DIR: Record<string, string> = { core: CORE_SERVICE_NAME, rm: RM_SERVICE_NAME, vmm: VMM_SERVICE_NAME };
// The VMID constants the services name (stage2 types.ts, rm vmid.ts).
const VMIDS: Record<string, number> = { VMID_HYP: 0, VMID_HOST: 3, VMID_HLOS: 3, VMID_RM: 0xff };
/** Rules that depend on a request field and so stay in the handler. */
const FIELD_RULES = new Set(['ListParcels all_vms']);

const vmidList = (text: string): number[] =>
  text
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t !== '')
    .map((t) => {
      expect(VMIDS, `unknown VMID constant ${t}`).toHaveProperty(t);
      return VMIDS[t] as number;
    })
    .sort((a, b) => a - b);

/** service → rpc → allowed VMIDs, from the services' source today. */
function rulesInServices(): Map<string, Map<string, number[]>> {
  const rules = new Map<string, Map<string, number[]>>();
  const add = (service: string, rpc: string, vmids: number[]): void => {
    const m = rules.get(service) ?? new Map<string, number[]>();
    rules.set(service, m);
    m.set(rpc, vmids);
  };
  for (const [dir, service] of Object.entries(SERVICE_OF_DIR)) {
    const src = join(SERVICES_DIR, dir, 'src');
    for (const file of readdirSync(src).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'))) {
      const text = readFileSync(join(src, file), 'utf8');
      for (const m of text.matchAll(/requireCaller\(call, \[([^\]]*)\], '([^']+)'\)/g)) add(service, m[2] as string, vmidList(m[1] as string));
      // The core's table: `Name: ALIAS,` entries over `const ALIAS: readonly number[] = [...]`.
      const table = /export const CALLERS = \{([^}]*)\}/.exec(text);
      if (table === null) continue;
      const aliases = new Map([...text.matchAll(/const (\w+): readonly number\[\] = \[([^\]]*)\];/g)].map((a) => [a[1] as string, vmidList(a[2] as string)]));
      for (const e of (table[1] as string).matchAll(/(\w+): (\w+),/g)) {
        const vmids = aliases.get(e[2] as string);
        expect(vmids, `CALLERS.${e[1]}: unknown alias ${e[2]}`).toBeDefined();
        add(service, e[1] as string, vmids as number[]);
      }
    }
  }
  return rules;
}

describe('AUTHZ_TABLE agrees with the services', () => {
  const services = rulesInServices();

  test('the services still have caller rules to compare (the parser found them)', () => {
    expect(services.get(CORE_SERVICE_NAME)?.size).toBeGreaterThan(30);
    expect(services.get(CORE_SERVICE_NAME)?.get('Reset')).toEqual([3]);
    expect(services.get(RM_SERVICE_NAME)?.get('ListVms')).toEqual([3]);
    expect(services.get(VMM_SERVICE_NAME)?.get('ListAllVms')).toEqual([3]);
  });

  test('every requireCaller rule is the table rule, and every restricted table rule is a requireCaller rule', () => {
    const fromServices: string[] = [];
    for (const [service, rpcs] of services)
      for (const [rpc, vmids] of rpcs) if (!FIELD_RULES.has(rpc)) fromServices.push(`${service}/${rpc}: ${vmids.join(',')}`);
    const fromTable: string[] = [];
    for (const [service, rpcs] of Object.entries(AUTHZ_TABLE))
      for (const [rpc, rule] of Object.entries(rpcs)) {
        if (isOpen(rule) || TABLE_ONLY.includes(`${service}/${rpc}`)) continue;
        expect(rule.clients, `${service}/${rpc}: no service rule names a client yet`).toBeUndefined();
        fromTable.push(`${service}/${rpc}: ${[...(rule.vmids as number[])].sort((a, b) => a - b).join(',')}`);
      }
    expect(fromTable.sort()).toEqual(fromServices.sort());
  });

  test('table-only rules (enforced with mTLS) restrict what no handler checks: FaultService and VMM Reset to HOST', () => {
    for (const key of TABLE_ONLY) {
      const slash = key.lastIndexOf('/');
      expect(AUTHZ_TABLE[key.slice(0, slash)]?.[key.slice(slash + 1)], key).toEqual({ vmids: [3] });
      expect(services.get(key.slice(0, slash))?.get(key.slice(slash + 1)), `${key} has a handler rule: drop it from TABLE_ONLY`).toBeUndefined();
    }
  });

  test('field-level rules are left open in the table (the handler decides)', () => {
    expect(services.get(RM_SERVICE_NAME)?.get('ListParcels all_vms')).toEqual([3]);
    expect(isOpen(AUTHZ_TABLE[RM_SERVICE_NAME]!['ListParcels']!)).toBe(true);
  });

  test.each([
    [CORE_SERVICE_NAME, CoreServiceService],
    [RM_SERVICE_NAME, RmServiceService],
    [VMM_SERVICE_NAME, VmmServiceService],
    [FAULT_SERVICE_NAME, FaultServiceService],
  ] as const)('%s: the table lists exactly its RPCs', (name, definition) => {
    const rpcs = Object.values(definition as grpc.ServiceDefinition).map((m) => m.path.slice(m.path.lastIndexOf('/') + 1));
    expect(Object.keys(AUTHZ_TABLE[name] ?? {}).sort()).toEqual(rpcs.sort());
  });
});

describe('authorize', () => {
  const table: AuthzTable = {
    s: { Host: { vmids: [3] }, Guests: { vmids: ['guest'] }, Vmm: { vmids: [3], clients: ['vmm'] }, Open: { vmids: 'any' } },
  };
  const at = (method: string, vmid: number, client = 'anonymous'): string => authorize('s', method, principal(vmid, client), table)?.message ?? 'OK';

  test('VMIDs, the guest class and client names', () => {
    expect([at('Host', 3), at('Host', 0x80), at('Open', 7)]).toEqual(['OK', 'Host may be called by VMID 0x3 only; caller is VMID 0x80 as client anonymous', 'OK']);
    expect([at('Guests', 0x80), at('Guests', 0xbe), at('Guests', 0xbf), at('Guests', 3)].map((m) => m === 'OK')).toEqual([true, true, false, false]);
    expect([at('Vmm', 3, 'vmm'), at('Vmm', 3, 'cli')]).toEqual(['OK', 'Vmm may be called by VMID 0x3 as client vmm only; caller is VMID 0x3 as client cli']);
  });

  test('an RPC or service missing from the table is refused PERMISSION_DENIED', () => {
    expect(at('Nope', 3)).toBe('s/Nope is not in the authorisation table: no caller may call it');
    expect(authorize('t', 'Host', principal(3, 'vmm'), table)?.code).toBe(7);
    expect(authorize('s', 'constructor', principal(3, 'vmm'), table)?.code).toBe(7);
  });
});
