/**
 * A REALM VM's life cycle (vm-manager.ts LIFECYCLES) over the core's RMI (stage2-models.md §B3): the RD and
 * root RTTs delegated from host pages and REALM_CREATE; at start the RTTs, INIT_RIPAS and a DATA
 * granule per page of every binding, then REALM_ACTIVATE; teardown in the RMM's order
 * (@hypmesh/stage2 realmTearDown), every granule undelegated and given back to the host.
 */
import { realmCreateRttLevels, realmRootRttCount, realmTearDown, startLevel, type RealmHost } from '@hypmesh/stage2';
import type { Binding } from './bindings.js';
import { PAGE_BYTES } from './host-pages.js';
import type { VmLifecycle, VmOps } from './vm-ops.js';
import type { Made, Vm } from './vm-record.js';
import { vmmFail, vmmOk, type VmmResult } from './vmm-error.js';

async function createRealm(ops: VmOps, ipaBits: number, newVm: (vmid: number) => Vm): Promise<Made> {
  const sl = startLevel(ipaBits);
  const count = realmRootRttCount(ipaBits, sl);
  const rdAddr = ops.pages.allocPage();
  const rootRun = ops.pages.allocRun(count);
  const giveBack = (): void => {
    if (rdAddr !== undefined) ops.pages.freePage(rdAddr);
    if (rootRun !== undefined) ops.pages.freeRun(rootRun);
  };
  if (rdAddr === undefined || rootRun === undefined) {
    giveBack();
    return vmmFail('ENOMEM', 'donation_region_full', `no pages for the RD and ${count} root RTTs`);
  }
  const roots = Array.from({ length: count }, (_, i) => (rootRun.base + i) * PAGE_BYTES);
  const delegated: number[] = [];
  const undo = async (): Promise<void> => {
    for (const a of delegated) await ops.core.granuleUndelegate(a);
    giveBack();
  };
  for (const a of [rdAddr, ...roots]) {
    const d = await ops.core.granuleDelegate(a);
    if (!d.ok) {
      await undo();
      return vmmFail('EINVAL', 'granule_delegate', `RMI_GRANULE_DELEGATE 0x${a.toString(16)}: ${d.error.status} ${d.error.rule}`, d.error.status);
    }
    delegated.push(a);
  }
  const c = await ops.core.realmCreate(rdAddr, { s2sz: ipaBits, rttLevelStart: sl, rttNumStart: count, rttBase: roots[0]! });
  if (!c.ok) {
    await undo();
    return vmmFail('EINVAL', 'realm_create', `RMI_REALM_CREATE: ${c.error.status} ${c.error.rule}: ${c.error.message}`, c.error.status);
  }
  const vm = newVm(0);
  vm.realm = { rd: rdAddr, roots, sl, recs: [], foundAtRestart: false };
  vm.realmPages = 1 + count;
  return vmmOk(vm);
}

function realmHost(ops: VmOps, vm: Vm): RealmHost {
  return {
    alloc: () => {
      const a = ops.pages.allocPage();
      if (a !== undefined) vm.realmPages++;
      return a;
    },
    free: (addr) => {
      if (vm.realm?.foundAtRestart === true) return;
      ops.pages.freePage(addr);
      vm.realmPages--;
    },
    warn: (message) => vm.leaked.push(`WARN: ${message}`),
  };
}

/** A realm's start: RTTs, INIT_RIPAS and DATA_CREATE over every binding, then REALM_ACTIVATE. */
async function startRealm(ops: VmOps, vm: Vm): Promise<VmmResult<void>> {
  const realm = vm.realm!;
  const host = realmHost(ops, vm);
  const fail = (rule: string, what: string, e: { status: string; rule: string; message: string }): VmmResult<never> =>
    vmmFail('EINVAL', rule, `${what}: ${e.status} ${e.rule}: ${e.message}`, e.status);
  for (const b of vm.bindings) {
    const base = Number(b.guestAddr);
    const end = base + Number(b.sizeBytes);
    for (let ipa = base; ipa < end; ipa = Math.floor(ipa / (2 * 2 ** 20) + 1) * 2 * 2 ** 20) {
      const r = await realmCreateRttLevels(ops.core, realm.rd, host, ipa, realm.sl, 3);
      if (!r.ok) return vmmFail(r.error.errno === 'ENOMEM' ? 'ENOMEM' : 'ENXIO', `start_${r.error.rule}`, r.error.message, r.error.rmi?.status);
    }
    for (let at = base; at < end; ) {
      const r = await ops.core.rttInitRipas(realm.rd, at, end);
      if (!r.ok) return fail('start_init_ripas', 'RMI_RTT_INIT_RIPAS', r.error);
      at = r.value['top'] ?? end; // x1, the progress (stage2 names the output `top`)
    }
    for (let ipa = base; ipa < end; ipa += PAGE_BYTES) {
      const data = host.alloc();
      if (data === undefined) return vmmFail('ENOMEM', 'donation_region_full', 'no page for a DATA granule');
      const d = await ops.core.granuleDelegate(data);
      if (!d.ok) {
        host.free(data);
        return fail('start_granule_delegate', 'RMI_GRANULE_DELEGATE', d.error);
      }
      const c = await ops.core.dataCreate(realm.rd, data, ipa, Number(b.hostAddr) + (ipa - base), 0);
      if (!c.ok) {
        await ops.core.granuleUndelegate(data);
        host.free(data);
        return fail('start_data_create', 'RMI_DATA_CREATE', c.error);
      }
    }
  }
  const a = await ops.core.realmActivate(realm.rd);
  if (!a.ok) return fail('start_realm_activate', 'RMI_REALM_ACTIVATE', a.error);
  return vmmOk(undefined);
}

async function tearDownRealm(ops: VmOps, vm: Vm): Promise<void> {
  const realm = vm.realm!;
  const host = realmHost(ops, vm);
  const layout = { rd: realm.rd, roots: realm.roots, ipaBits: vm.ipaBits, startLevel: realm.sl, recs: realm.recs };
  await ops.attempt(vm, 'realm_tear_down', async () => {
    const r = await realmTearDown(ops.core, layout, host);
    return r.ok ? vmmOk(undefined) : vmmFail(r.error.errno === 'ENOMEM' ? 'ENOMEM' : r.error.errno === 'EBUSY' ? 'EBUSY' : 'ENXIO', r.error.rule, r.error.message, r.error.rmi?.status);
  });
  if (vm.realmPages > 0) vm.leaked.push(`${vm.realmPages} realm granules still delegated`);
}

/** A realm binding is lent, and lies in the protected (lower) half of the IPA space. */
function refuseRealmBinding(vm: Vm, b: Binding): VmmResult<never> | undefined {
  if (b.mode !== 'LEND' || b.guestAddr + b.sizeBytes > 1n << BigInt(vm.ipaBits - 1))
    return vmmFail('EINVAL', 'realm_binding_not_private', 'a realm binding is lent and lies in the protected address range');
  return undefined;
}

export const REALM_LIFECYCLE: VmLifecycle = {
  rmTracked: false,
  create: createRealm,
  refuseBinding: refuseRealmBinding,
  start: startRealm,
  // The model runs no RECs: a running realm stops without an RMI call.
  stop: () => Promise.resolve(vmmOk(undefined)),
  tearDown: tearDownRealm,
};
