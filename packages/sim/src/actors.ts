/**
 * The simulation's actors as one data table (ACTORS): a name, a weight the scheduler draws with, and
 * an async action that makes one client call sequence against the world. Three kinds of client, as
 * in DESIGN.md §5: VMM sessions (create, bind, start, stop, destroy GUNYAH and REALM VMs; vanish),
 * guests (accept, release, notify parcels) and HLOS (share, lend, donate, append, notify, reclaim).
 *
 * Actions run concurrently: the scheduler starts one per step and does not wait for it, so calls of
 * different actors interleave wherever a call waits on the simulated clock (RM waits, delays).
 *
 * What the clients remember is only what their replies told them (a lost reply leaves them not
 * knowing): the handles of their VMs and parcels, the MEM_SHARED handles in a guest's inbox. An
 * action picks its target from that with the step's own PRNG (`r`), so removing a step (shrinking)
 * changes the picks of no other step's draws.
 *
 * Each action returns one line for the event log: `ok ...` or the refusal `ERR errno/code rule`.
 */
import { Prng } from '@hypmesh/fault';
import { VMID_HLOS } from '@hypmesh/rm';
import { ACCEPT_FLAGS, ACL_RIGHTS, APPEND_FLAGS, MEM_TYPE, NOTIFY_FLAGS, SHARE_FLAGS, TRANS_TYPE, type SglEntry } from '@hypmesh/rm-wire';
import type { VmType } from '@hypmesh/vmm';
import { BINDING_AREA_BASE, BINDING_PAGES, BINDING_SLOTS, HLOS_AREA_BASE, HLOS_SLOTS, HLOS_SLOT_PAGES, PAGE_BYTES, type World } from './world.js';

export interface SimVm {
  readonly handle: number;
  readonly type: VmType;
  readonly slot: number;
}

export interface SimSession {
  readonly id: string;
  readonly lease: boolean;
  readonly vms: SimVm[];
}

type Trans = keyof typeof TRANS_TYPE;

export interface SimParcel {
  readonly handle: number;
  readonly trans: Trans;
  readonly borrower: number;
  readonly slot: number;
  /** Created with APPEND: its last SGL chunk is still to come. */
  appendPending: boolean;
}

/** Everything the clients know, and the slots of memory they hand out. */
export class ClientState {
  readonly sessions: SimSession[] = [];
  readonly parcels: SimParcel[] = [];
  /** Parcels each guest VMID accepted (by its own replies). */
  readonly accepted = new Map<number, Set<number>>();
  readonly bindingSlotUsed = new Uint8Array(BINDING_SLOTS);
  /** 0 free, 1 in a parcel, 2 donated away for good. */
  readonly hlosSlotUse = new Uint8Array(HLOS_SLOTS);
  /** What teardowns and HLOS reported they could not take back (the `leaked` lists). */
  readonly leaked: string[] = [];
  /** VM handles whose destroy result is awaited (so each teardown is recorded once). */
  readonly watched = new Set<number>();
  /** VMIDs whose VM is being torn down: HLOS lends them nothing more and takes back what it lent. */
  readonly dying = new Set<number>();
  /** Binding slot of each VM handle, freed when its teardown reports nothing leaked. */
  readonly slotOf = new Map<number, number>();

  takeSlot(slots: Uint8Array, r: Prng): number | undefined {
    // Start at a random slot and take the next free one: cheap, and deterministic per draw.
    const n = slots.length;
    const start = r.nextIntInclusive(0, n - 1);
    for (let i = 0; i < n; i++) {
      const k = (start + i) % n;
      if (slots[k] === 0) {
        slots[k] = 1;
        return k;
      }
    }
    return undefined;
  }
}

export interface ActorRow {
  readonly name: string;
  readonly weight: number;
  readonly run: (w: World, c: ClientState, r: Prng) => Promise<string>;
}

const pick = <T>(xs: readonly T[], r: Prng): T | undefined => (xs.length === 0 ? undefined : xs[r.nextIntInclusive(0, xs.length - 1)]);

/** pickWhere's filters for the picks that used to filter a copied list (same draws). */
const always = (): boolean => true;
const appendPending = (p: SimParcel): boolean => p.appendPending;
const isLease = (s: SimSession): boolean => s.lease;
const RWX = ACL_RIGHTS.R | ACL_RIGHTS.W | ACL_RIGHTS.X;
const LEASE_TTL_MS = 1_000; // the VMM's minimum (lease.ts LEASE_TTL_MS_MIN): 1,000 steps unnamed and it expires
const IPA_BITS = 40;
/** GUNYAH guest memory at 2 GiB, REALM's in the protected (lower) half. */
const GUEST_BASE: Record<VmType, bigint> = { GUNYAH: 0x8000_0000n, REALM: 0x1000_0000n };

const vmmErr = (r: { ok: false; error: { errno: string; rule: string } }): string => `ERR ${r.error.errno} ${r.error.rule}`;
const rmErr = (r: { ok: false; error: { rmError: string; rule: string } }): string => `ERR ${r.error.rmError} ${r.error.rule}`;

/** One of the sessions' VMs, picked as `pick` over every session's VMs in order would (one draw, no list built). */
function pickLiveVm(c: ClientState, r: Prng): { s: SimSession; vm: SimVm } | undefined {
  let n = 0;
  for (const s of c.sessions) n += s.vms.length;
  if (n === 0) return undefined;
  let k = r.nextIntInclusive(0, n - 1);
  for (const s of c.sessions) {
    if (k < s.vms.length) return { s, vm: s.vms[k]! };
    k -= s.vms.length;
  }
  return undefined;
}

/** VMIDs gathered for one pick (pickGuestVmid), reused: no array or comparator per call. */
let vmidScratch = new Uint32Array(64);

/** One of the RM VMIDs of live GUNYAH VMs (borrowers HLOS may name), picked as `pick` over them in VMID order would. */
function pickGuestVmid(w: World, c: ClientState, r: Prng): number | undefined {
  if (vmidScratch.length < w.rm.vms.size) vmidScratch = new Uint32Array(2 * w.rm.vms.size);
  let n = 0;
  for (const v of w.rm.vms.keys()) if (!c.dying.has(v)) vmidScratch[n++] = v;
  // A typed array sorts numerically: the VMID order the list had.
  return n === 0 ? undefined : vmidScratch.subarray(0, n).sort()[r.nextIntInclusive(0, n - 1)];
}

/** One of `keys` that satisfies `ok`, picked as `pick` over the filtered list would, without building it. */
function pickWhere<K>(keys: () => Iterable<K>, ok: (k: K) => boolean, r: Prng): K | undefined {
  let n = 0;
  for (const k of keys()) if (ok(k)) n++;
  if (n === 0) return undefined;
  let i = r.nextIntInclusive(0, n - 1);
  for (const k of keys()) if (ok(k) && i-- === 0) return k;
  return undefined;
}

const slotSgl = (slot: number, fromPage: number, pages: number): SglEntry => ({ base: BigInt(HLOS_AREA_BASE + (slot * HLOS_SLOT_PAGES + fromPage) * PAGE_BYTES), size: BigInt(pages * PAGE_BYTES) });

async function createVm(w: World, c: ClientState, r: Prng, type: VmType): Promise<string> {
  const s = pick(c.sessions, r);
  if (s === undefined) return 'skip no session';
  const slot = c.takeSlot(c.bindingSlotUsed, r);
  if (slot === undefined) return 'skip no binding slot';
  const made = await w.vmmCall('CreateVm', () => w.vmm.create(s.id, type, IPA_BITS));
  if (!made.ok) {
    c.bindingSlotUsed[slot] = 0;
    return vmmErr(made);
  }
  const handle = made.value.handle;
  c.slotOf.set(handle, slot);
  const guest = GUEST_BASE[type];
  const bound = await w.vmmCall('MapMem', () =>
    w.vmm.mapMem(handle, { guestAddr: guest, hostAddr: BigInt(BINDING_AREA_BASE + slot * BINDING_PAGES * PAGE_BYTES), sizeBytes: BigInt(BINDING_PAGES * PAGE_BYTES), mode: 'LEND', rights: RWX }, false, s.id),
  );
  if (type === 'GUNYAH') await w.vmmCall('SetDtbConfig', () => w.vmm.setDtbConfig(handle, guest, BigInt(PAGE_BYTES), s.id));
  // The session may have ended meanwhile: the VM is then already being torn down by the VMM.
  if (c.sessions.includes(s)) s.vms.push({ handle, type, slot });
  return `ok vm ${handle} ${type}${bound.ok ? '' : ' unbound'}`;
}

async function vmOp(w: World, c: ClientState, r: Prng, op: 'StartVm' | 'StopVm' | 'DestroyVm'): Promise<string> {
  const t = pickLiveVm(c, r);
  if (t === undefined) return 'skip no vm';
  const { s, vm } = t;
  if (op === 'DestroyVm') {
    s.vms.splice(s.vms.indexOf(vm), 1);
    const d = await w.vmmCall(op, () => w.vmm.destroy(vm.handle, s.id));
    return d.ok ? `ok vm ${vm.handle} destroyed` : vmmErr(d);
  }
  const res = await w.vmmCall(op, () => (op === 'StartVm' ? w.vmm.start(vm.handle, s.id) : w.vmm.stop(vm.handle, s.id)));
  return res.ok ? `ok vm ${vm.handle} ${res.value.state}` : vmmErr(res);
}

async function hlosCreate(w: World, c: ClientState, r: Prng, trans: Trans, append: boolean): Promise<string> {
  const borrower = pickGuestVmid(w, c, r);
  if (borrower === undefined) return 'skip no guest';
  const slot = c.takeSlot(c.hlosSlotUse, r);
  if (slot === undefined) return 'skip no hlos slot';
  const name = trans === 'SHARE' ? 'MEM_SHARE' : trans === 'LEND' ? 'MEM_LEND' : 'MEM_DONATE';
  const sgl = append ? [slotSgl(slot, 0, 2)] : [slotSgl(slot, 0, HLOS_SLOT_PAGES)];
  // A share keeps the owner's access, so HLOS is in its ACL (§3.2); a lend or donate gives it up.
  const acl = trans === 'SHARE' ? [{ vmid: VMID_HLOS, rights: RWX }, { vmid: borrower, rights: RWX }] : [{ vmid: borrower, rights: RWX }];
  const res = await w.rmCall(VMID_HLOS, name, { memType: MEM_TYPE.NORMAL, flags: append ? SHARE_FLAGS.APPEND : 0, label: 0, acl, sgl, attrs: [] });
  if (!res.ok) {
    c.hlosSlotUse[slot] = 0;
    return rmErr(res);
  }
  c.parcels.push({ handle: res.value.handle, trans, borrower, slot, appendPending: append });
  return `ok parcel ${res.value.handle} ${trans} to ${borrower}`;
}

async function hlosAppend(w: World, c: ClientState, r: Prng): Promise<string> {
  const p = pickWhere(() => c.parcels, appendPending, r);
  if (p === undefined) return 'skip no append pending';
  const res = await w.rmCall(VMID_HLOS, 'MEM_APPEND', { handle: p.handle, flags: APPEND_FLAGS.DONE, sgl: [slotSgl(p.slot, 2, 1), slotSgl(p.slot, 3, 1)] });
  if (res.ok) p.appendPending = false;
  return res.ok ? `ok parcel ${p.handle} appended` : rmErr(res);
}

async function hlosNotify(w: World, c: ClientState, r: Prng): Promise<string> {
  const p = pick(c.parcels, r);
  if (p === undefined) return 'skip no parcel';
  const res = await w.rmCall(VMID_HLOS, 'MEM_NOTIFY', { handle: p.handle, flags: NOTIFY_FLAGS.SHARED, memInfoTag: 0, vmids: [{ vmid: p.borrower }] });
  return res.ok ? `ok parcel ${p.handle} notified` : rmErr(res);
}

/** MEM_RECLAIM of one HLOS parcel; the handle is forgotten when reclaimed or when the RM no longer knows it. */
export async function hlosReclaim(w: World, c: ClientState, p: SimParcel): Promise<string> {
  const res = await w.rmCall(VMID_HLOS, 'MEM_RECLAIM', { handle: p.handle, flags: 0 });
  const gone = res.ok || res.error.rmError === 'HANDLE_INVALID';
  if (gone && c.parcels.includes(p)) {
    c.parcels.splice(c.parcels.indexOf(p), 1);
    // A donated parcel the RM forgot was accepted: its memory is the guest's now, never HLOS's again.
    c.hlosSlotUse[p.slot] = res.ok || p.trans !== 'DONATE' ? 0 : 2;
  }
  return res.ok ? `ok parcel ${p.handle} reclaimed` : rmErr(res);
}

/** Rounds and spacing of HLOS's reclaim of the parcels it lent to a VM being torn down. */
const RECLAIM_FOR_ROUNDS = 8;
const RECLAIM_FOR_GAP_MS = 5;

/**
 * HLOS learns that a VM is going away and takes back every parcel it gave that VM (as a driver
 * does on the borrower's exit): a parcel still naming the VM keeps the core from destroying the
 * VM's address space (space_in_grant). Accepted parcels are refused until the VM's reset has
 * released them, so HLOS tries again a few times on the clock.
 */
export async function hlosReclaimFor(w: World, c: ClientState, vmid: number): Promise<string> {
  let reclaimed = 0;
  // Until the teardown is over (a create already in flight may still land a parcel), or enough rounds.
  for (let round = 0; round < RECLAIM_FOR_ROUNDS && c.dying.has(vmid); round++) {
    const mine = c.parcels.filter((p) => p.borrower === vmid);
    for (const p of mine) if ((await hlosReclaim(w, c, p)).startsWith('ok')) reclaimed++;
    await new Promise<void>((resolve) => void w.clock.after(RECLAIM_FOR_GAP_MS, resolve));
  }
  const left = c.parcels.filter((p) => p.borrower === vmid).length;
  return `ok reclaimed ${reclaimed} for vmid ${vmid}, ${left} left`;
}

/** Only a running guest executes, so only a running guest calls the RM. */
const running = (w: World, vmid: number): boolean => w.rm.vms.get(vmid)?.status === 'RUNNING';

async function guestAccept(w: World, c: ClientState, r: Prng): Promise<string> {
  const vmid = pickWhere(() => w.inbox.keys(), (v) => (w.inbox.get(v)?.length ?? 0) > 0 && running(w, v), r);
  if (vmid === undefined) return 'skip empty inboxes';
  const box = w.inbox.get(vmid)!;
  const handle = box.splice(r.nextIntInclusive(0, box.length - 1), 1)[0]!;
  const trans = w.rm.parcels.get(handle)?.transType ?? 'SHARE';
  const res = await w.rmCall(vmid, 'MEM_ACCEPT', { handle, memType: MEM_TYPE.NORMAL, transType: TRANS_TYPE[trans], flags: ACCEPT_FLAGS.DONE, label: 0, acl: [], mapVmid: 0, sgl: [], attrs: [] });
  if (res.ok) {
    let set = c.accepted.get(vmid);
    if (set === undefined) c.accepted.set(vmid, (set = new Set()));
    set.add(handle);
  }
  return res.ok ? `ok ${vmid} accepted ${handle}` : rmErr(res);
}

async function guestRelease(w: World, c: ClientState, r: Prng, notify: boolean): Promise<string> {
  const vmid = pickWhere(() => c.accepted.keys(), (v) => c.accepted.get(v)!.size > 0 && running(w, v), r);
  if (vmid === undefined) return 'skip nothing accepted';
  const set = c.accepted.get(vmid)!;
  const handle = pickWhere(() => set, always, r)!;
  if (notify) {
    const n = await w.rmCall(vmid, 'MEM_NOTIFY', { handle, flags: NOTIFY_FLAGS.ACCEPTED, memInfoTag: 0, vmids: [] });
    return n.ok ? `ok ${vmid} notified accepted ${handle}` : rmErr(n);
  }
  const res = await w.rmCall(vmid, 'MEM_RELEASE', { handle, flags: 0 });
  if (res.ok || res.error.rmError === 'HANDLE_INVALID') set.delete(handle);
  return res.ok ? `ok ${vmid} released ${handle}` : rmErr(res);
}

/** The actors and their weights (the scheduler's table; a replay file names rows by `name`). */
export const ACTORS: readonly ActorRow[] = [
  {
    name: 'session.open',
    weight: 3,
    run: async (w, c, r) => {
      if (c.sessions.length >= 6) return 'skip sessions full';
      if (r.nextFraction() < 0.5) {
        const id = w.vmm.openSession();
        c.sessions.push({ id, lease: false, vms: [] });
        return `ok ${id}`;
      }
      const lease = w.vmm.openLease(LEASE_TTL_MS);
      if (!lease.ok) return vmmErr(lease);
      c.sessions.push({ id: lease.value.sessionId, lease: true, vms: [] });
      return `ok ${lease.value.sessionId}`;
    },
  },
  {
    // The client goes away: a stream session ends at once; a lease is just never named again and
    // expires on the simulated clock, LEASE_TTL_MS later.
    name: 'session.vanish',
    weight: 1,
    run: async (w, c, r) => {
      const s = pick(c.sessions, r);
      if (s === undefined) return 'skip no session';
      c.sessions.splice(c.sessions.indexOf(s), 1);
      if (!s.lease) w.vmm.endSession(s.id);
      return `ok ${s.id} vanished with ${s.vms.length} vm(s)`;
    },
  },
  {
    name: 'session.renew',
    weight: 2,
    run: async (w, c, r) => {
      const s = pickWhere(() => c.sessions, isLease, r);
      if (s === undefined) return 'skip no lease';
      const res = await w.vmmCall('RenewLease', () => w.vmm.renewLease(s.id));
      // An expired lease is gone with its VMs (the VMM tore them down): forget it.
      if (!res.ok && res.error.errno === 'EBADF') c.sessions.splice(c.sessions.indexOf(s), 1);
      return res.ok ? `ok ${s.id} renewed` : vmmErr(res);
    },
  },
  { name: 'vmm.create.gunyah', weight: 4, run: (w, c, r) => createVm(w, c, r, 'GUNYAH') },
  { name: 'vmm.create.realm', weight: 1, run: (w, c, r) => createVm(w, c, r, 'REALM') },
  { name: 'vmm.start', weight: 4, run: (w, c, r) => vmOp(w, c, r, 'StartVm') },
  { name: 'vmm.stop', weight: 2, run: (w, c, r) => vmOp(w, c, r, 'StopVm') },
  { name: 'vmm.destroy', weight: 3, run: (w, c, r) => vmOp(w, c, r, 'DestroyVm') },
  { name: 'hlos.share', weight: 3, run: (w, c, r) => hlosCreate(w, c, r, 'SHARE', false) },
  { name: 'hlos.lend', weight: 3, run: (w, c, r) => hlosCreate(w, c, r, 'LEND', false) },
  { name: 'hlos.donate', weight: 1, run: (w, c, r) => hlosCreate(w, c, r, 'DONATE', false) },
  { name: 'hlos.lend.append', weight: 2, run: (w, c, r) => hlosCreate(w, c, r, 'LEND', true) },
  { name: 'hlos.append', weight: 2, run: hlosAppend },
  { name: 'hlos.notify', weight: 6, run: hlosNotify },
  {
    name: 'hlos.reclaim',
    weight: 5,
    run: async (w, c, r) => {
      const p = pick(c.parcels, r);
      return p === undefined ? 'skip no parcel' : hlosReclaim(w, c, p);
    },
  },
  { name: 'guest.accept', weight: 6, run: guestAccept },
  { name: 'guest.release', weight: 3, run: (w, c, r) => guestRelease(w, c, r, false) },
  { name: 'guest.notify', weight: 1, run: (w, c, r) => guestRelease(w, c, r, true) },
];

export const ACTOR_INDEX: ReadonlyMap<string, number> = new Map(ACTORS.map((a, i) => [a.name, i]));
