/**
 * A durable RM's core calls as intents (DESIGN.md §8 "Durable state" and "Ambiguity handled";
 * issue 9 items 1 and 2). The RM's own state is committed after each call (durable-state.ts), but its
 * calls change the core first: an RM killed between a core call and its own commit came back, before
 * this, with a parcel whose grant was gone (MEM_RECLAIM), a grant no parcel named (MEM_SHARE/LEND), a
 * grant mapped for a VM the RM did not list as accepting it (MEM_ACCEPT, VM_START), a stage-2 no VM
 * owned (VM_ALLOCATE). The core's state cannot be rolled back with the RM's, so the RM writes ahead:
 *
 *   1. before each core call, the call (method and arguments) is recorded under a fresh request id
 *      and the RM's whole state, intent included, is committed (the persist port);
 *   2. the call carries that id (`x-hypmesh-request-id`): the core remembers it durably and answers a
 *      repeat with its first outcome (services/core keys.ts);
 *   3. a definite answer is folded into the RM's state by the call's own code and the intent dropped,
 *      both in the call's end-of-call commit; an answer that stays unknown (core_outcome_unknown)
 *      leaves the intent open: the same core call again (the client's next MEM_RECLAIM) reuses its id;
 *   4. after a restart, and in the background while any is open, every open intent is settled
 *      (`settleIntents`): the same call with the same id, so the core says what it did the first
 *      time, or does it now, or refuses; then SETTLE below decides by its method, against the RM's
 *      committed state: a call whose effect the RM can own is folded forward (a destroyed grant
 *      deletes its parcel, an unmapped grant is released, an appended grant extends its parcel, a
 *      donated grant's accept completes; a destroyed stage-2 waits for its owner's next
 *      VM_DEALLOCATE, which completes at once); one whose effect nobody asked to keep is undone by
 *      its inverse call, itself an intent (a grant created for a share nobody was told of is
 *      destroyed, a map nobody was told of unmapped, a stage-2 made for a VM_ALLOCATE nobody was
 *      told of destroyed).
 *
 * So after a restart the RM and the core agree, nothing the RM acknowledged is lost (an acknowledged
 * call was committed without its intent), and the call that was in flight ends whole or not at all:
 * its client heard no answer, either is allowed (DESIGN.md §8). Between intents of one call (VM_START
 * accepting several boot parcels) the state committed is a legal one (READY with some parcels
 * accepted, as a SHARED notify to a READY VM makes), and a VM left RESETTING resumes its reset
 * (vm.ts resumeResets). Without a persist port (memory mode, the simulation) no intent is recorded
 * and every call goes to the port as before.
 */
import type { CoreGrantPort, CoreResult, FrameRun } from './core-port.js';
import type { ResourceManager } from './resource-manager.js';

export type CoreMethod = keyof CoreGrantPort;
type ArgsOf<M extends CoreMethod> = Omit<Parameters<CoreGrantPort[M]>[0], 'requestId'>;
/** One core call: the port method and its arguments (plain data: it is stored). */
export type CoreOp = { [M in CoreMethod]: { readonly method: M; readonly args: ArgsOf<M> } }[CoreMethod];

export interface CoreIntent {
  /** The call's request id; unique across the RM's lives and Resets (the prefix is the RM's own). */
  readonly id: string;
  readonly op: CoreOp;
  /** What the call was for beyond its arguments: MEM_APPEND with DONE finalises its parcel. */
  readonly finalise?: boolean;
}

/** The refusal rule of a call whose outcome stayed unknown (services/rm core-client; core-refusal.ts). */
const OUTCOME_UNKNOWN = 'outcome_unknown';
const unknown = (r: CoreResult<unknown>): boolean => !r.ok && r.error.rule === OUTCOME_UNKNOWN;

const signature = (op: CoreOp): string => JSON.stringify(op);

/** The request id of `op`: an open intent's for the same call (step 3), else a fresh one. */
function intentFor(rm: ResourceManager, op: CoreOp, finalise: boolean): CoreIntent {
  const sig = signature(op);
  for (const i of rm.intents.values()) if (signature(i.op) === sig) return i;
  const intent: CoreIntent = { id: `${rm.intentPrefix}-${++rm.intentSeq}`, op, ...(finalise && { finalise }) };
  rm.intents.set(intent.id, intent);
  return intent;
}

/** Makes `op` with its intent's id; the intent stays open only while the outcome is unknown. */
async function recorded(rm: ResourceManager, op: CoreOp, finalise = false): Promise<CoreResult<unknown>> {
  const intent = intentFor(rm, op, finalise);
  await rm.persist?.(rm);
  const r = await send(rm.port, intent);
  if (!unknown(r)) rm.intents.delete(intent.id);
  return r;
}

/** `intent`'s call on `port`, with its request id. */
const send = (port: CoreGrantPort, intent: CoreIntent): Promise<CoreResult<unknown>> =>
  (port[intent.op.method] as (a: object) => Promise<CoreResult<unknown>>)({ ...intent.op.args, requestId: intent.id });

/**
 * The port the RM's calls use (ResourceManager.core): with a persist port every call is an intent
 * (steps 1-3), without one it is the core port's own call. `finalise` marks a MEM_APPEND with DONE.
 */
export function intentPort(rm: ResourceManager, finalise = false): CoreGrantPort {
  const via =
    <M extends CoreMethod>(method: M) =>
    (args: ArgsOf<M>) =>
      rm.persist === undefined ? (rm.port[method] as (a: object) => Promise<unknown>)(args) : recorded(rm, { method, args } as CoreOp, finalise);
  return {
    createGrant: via('createGrant'),
    appendGrant: via('appendGrant'),
    mapGrant: via('mapGrant'),
    unmapGrant: via('unmapGrant'),
    destroyGrant: via('destroyGrant'),
    createVmSpace: via('createVmSpace'),
    destroyVmSpace: via('destroyVmSpace'),
  } as CoreGrantPort;
}

// ---- settling (step 4) ------------------------------------------------------------------------

const PAGE = 4096n;
const bytesOf = (r: FrameRun): { base: bigint; size: bigint } => ({ base: BigInt(r.base) * PAGE, size: BigInt(r.count) * PAGE });
const parcelOfGrant = (rm: ResourceManager, grantId: number) => [...rm.parcels.values()].find((p) => p.grantId === grantId);

/** What a settled intent leaves to do: nothing more, or its inverse call (a new intent). */
type Then = CoreOp | undefined;
/** Refusal rules that mean the object the call acts on is gone, as if the call had applied. */
const GONE = new Set(['no_such_grant', 'no_such_vm']);

/**
 * Per method: what a settled call means for the RM (its committed state is as before the call).
 * `ok` is the core's definite success (first outcome or applied now); a refusal changed nothing in
 * the core, so only GONE refusals are acted on, as a success of a destroy or unmap would be.
 */
const SETTLE: { readonly [M in CoreMethod]: (rm: ResourceManager, intent: CoreIntent & { op: { method: M } }, r: CoreResult<unknown>) => Then } = {
  // A grant made for a share/lend/donate nobody was told of (no parcel names it): destroyed.
  createGrant: (rm, { op }, r) => {
    if (!r.ok) return undefined;
    const grantId = (r.value as { grantId: number }).grantId;
    return parcelOfGrant(rm, grantId) === undefined ? { method: 'destroyGrant', args: { grantId, owner: op.args.owner } } : undefined;
  },
  // An append cannot be undone: its parcel takes the ranges (and DONE), as the call would have.
  appendGrant: (rm, { op, finalise }, r) => {
    const p = parcelOfGrant(rm, op.args.grantId);
    if (!r.ok || p === undefined) return undefined;
    p.regions = [...p.regions, ...op.args.ranges.map(bytesOf)];
    p.physRegions = (r.value as { physRuns: readonly FrameRun[] }).physRuns.map(bytesOf);
    if (finalise === true && p.state === 'INIT') p.state = 'SHARING';
    return undefined;
  },
  // A map nobody was told of is unmapped; a DONATE's map moved ownership for good, so the accept
  // completes (the parcel is gone, its IPAs the borrower's).
  mapGrant: (rm, { op }, r) => {
    const p = parcelOfGrant(rm, op.args.grantId);
    if (!r.ok || (p !== undefined && p.accepted.has(op.args.borrower))) return undefined;
    if (p?.transType !== 'DONATE') return { method: 'unmapGrant', args: { grantId: op.args.grantId, borrower: op.args.borrower } };
    rm.parcels.delete(p.handle);
    const space = rm.ipas.get(op.args.borrower);
    space?.free({ kind: 'accepted', handle: p.handle });
    for (const e of op.args.ranges.map(bytesOf)) if (space?.isFree(e.base, e.size) === true) space.take(e.base, e.size, { kind: 'donated', handle: p.handle });
    return undefined;
  },
  // An unmap (MEM_RELEASE, a reset's release): the borrower no longer holds the parcel.
  unmapGrant: (rm, { op }, r) => {
    if (!r.ok && !GONE.has(r.error.rule)) return undefined;
    const p = parcelOfGrant(rm, op.args.grantId);
    if (p === undefined || !p.accepted.has(op.args.borrower)) return undefined;
    p.accepted.delete(op.args.borrower);
    rm.ipas.get(op.args.borrower)?.free({ kind: 'accepted', handle: p.handle });
    if (p.accepted.size === 0) p.state = 'SHARING';
    // A reset's release tells the owner, as the reset stage would have (gunyah-rm.md §4.2 VM_RESET).
    if (rm.vms.get(op.args.borrower)?.status === 'RESETTING') rm.notify(p.owner, 'MEM_RELEASED', { handle: p.handle, vmid: op.args.borrower, memInfoTag: p.memInfoTag ?? 0 });
    return undefined;
  },
  // A destroyed grant (MEM_RECLAIM): its parcel is gone.
  destroyGrant: (rm, { op }, r) => {
    if (!r.ok && !GONE.has(r.error.rule)) return undefined;
    const p = parcelOfGrant(rm, op.args.grantId);
    if (p === undefined) return undefined;
    for (const b of p.pending.keys()) rm.ipas.get(b)?.free({ kind: 'accepted', handle: p.handle });
    rm.parcels.delete(p.handle);
    return undefined;
  },
  // A stage-2 made for a VM_ALLOCATE nobody was told of: destroyed.
  createVmSpace: (rm, { op }, r) => (r.ok && !rm.vms.has(op.args.vmid) ? { method: 'destroyVmSpace', args: { vmid: op.args.vmid } } : undefined),
  // A destroyed stage-2 (VM_DEALLOCATE) is not folded forward: the VM stays, its VMID held, until
  // its owner's VM_DEALLOCATE again, which the core answers no_such_vm and the RM completes (vm.ts).
  // The owner was told BUSY (or nothing): freeing the VMID now would let VM_ALLOCATE hand it to a new
  // VM that the owner's retry would then deallocate (issue 9 item 4: a reused VMID is never
  // confused with its previous holder).
  destroyVmSpace: () => undefined,
};

/**
 * Settles every open intent once (step 4), each inverse call recorded before it is made and settled
 * in the same pass. Runs between calls (ResourceManager.settleIntents queues it), so no intent is in
 * flight. Returns how many stay open (the core still gave no definite answer).
 */
export async function settleIntents(rm: ResourceManager): Promise<number> {
  const queue = [...rm.intents.values()];
  let open = 0;
  for (let intent = queue.shift(); intent !== undefined; intent = queue.shift()) {
    const r = await send(rm.port, intent);
    if (unknown(r)) {
      open++;
      continue;
    }
    const then = (SETTLE[intent.op.method] as (rm: ResourceManager, i: CoreIntent, r: CoreResult<unknown>) => Then)(rm, intent, r);
    rm.intents.delete(intent.id);
    if (then !== undefined) {
      const inverse: CoreIntent = { id: `${intent.id}-undo`, op: then };
      rm.intents.set(inverse.id, inverse);
      queue.push(inverse);
    }
    await rm.persist?.(rm);
  }
  return open;
}
