import { describe, expect, test } from 'vitest';
import { withMeta } from '../memory/granule.js';
import type { Stage2 } from '../stage2.js';
import { GRANULE_SIZE, VMID_HOST } from '../types.js';
import { hostAccess } from '../views.js';
import { dataCreateUnknown } from './data.js';
import { rmiInvariants } from './invariants.js';
import { realmCreateRttLevels, stage2RmiPort } from './kvm-host.js';
import { recCreate } from './rec.js';
import { TestHost, createTestRealm, delegated, must, newCore } from './test-support.js';

/** A realm with a REC, RTTs down to level 3 and one DATA page at IPA 0. */
async function populated() {
  const s = newCore();
  const host = new TestHost();
  const realm = createTestRealm(s, host);
  must(await realmCreateRttLevels(stage2RmiPort(s), realm.rd, host, 0, 1, 3));
  const data = delegated(s, host);
  must(dataCreateUnknown(s, realm.rd, data, 0));
  const rec = delegated(s, host);
  must(recCreate(s, realm.rd, rec));
  const l3 = [...s.rmm.rtts.values()].find((t) => t.level === 3)!;
  return { s, realm, data, rec, l3 };
}

describe('rmiInvariants: holds on valid states, reports each kind of corruption', () => {
  test('a populated realm has no violations', async () => {
    expect(rmiInvariants((await populated()).s)).toEqual([]);
  });

  const corruptions: { name: string; corrupt: (c: Awaited<ReturnType<typeof populated>>) => void; report: RegExp }[] = [
    { name: 'refcount off by one', corrupt: (c) => c.l3.refcount++, report: /refcount 2 but 1 TABLE\/ASSIGNED/ },
    {
      name: 'an RTT granule owned by the host',
      corrupt: (c) => c.s.memory.meta.update(c.l3.frame, 1, (m) => withMeta(m!, { owner: VMID_HOST })),
      report: /\(RTT\) owned by HOST/,
    },
    {
      name: 'the host maps a DATA granule',
      corrupt: (c) => c.s.host.table.rewrite(c.data / GRANULE_SIZE, 1, hostAccess('OWNED', 'RAM'), c.s.host.pool),
      report: /the host maps/,
    },
    {
      name: 'a DATA granule no entry maps',
      corrupt: (c) => c.s.memory.meta.update(c.rec / GRANULE_SIZE, 1, (m) => withMeta(m!, { rmi: 'DATA' })),
      report: /DATA granules .* differ from the ASSIGNED PAs/,
    },
    { name: 'RD refcount without its REC', corrupt: (c) => c.s.rmm.realms.get(c.realm.rd / GRANULE_SIZE)!.recCount++, report: /RD refcount 2 but 1 REC/ },
    { name: 'VMID not reserved', corrupt: (c) => c.s.rmm.vmids.clear(), report: /VMID 1 is not reserved/ },
    {
      name: 'an RTT no TABLE entry points to',
      corrupt: (c) => {
        const l2 = [...c.s.rmm.rtts.values()].find((t) => t.level === 2)!;
        l2.entries[0] = 0;
        l2.refcount--;
      },
      report: /\(level 3\) has 0 parent entries/,
    },
    { name: 'an NS entry inside the PAR', corrupt: (c) => (c.l3.entries[5] = 2), report: /is NS inside the PAR/ },
  ];
  test.each(corruptions)('$name', async ({ corrupt, report }) => {
    const c = await populated();
    corrupt(c);
    const v = rmiInvariants(c.s as Stage2);
    expect(v.some((m) => report.test(m)), v.join('\n')).toBe(true);
  });
});
