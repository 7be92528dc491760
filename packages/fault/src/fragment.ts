/**
 * Applying a decision to msgq fragments (BOUNDARY_VMM_TO_RM_FRAGMENT, BOUNDARY_RM_TO_CLIENT_FRAGMENT):
 * corrupt flips bytes, truncate cuts the fragment short, reorder holds a fragment back until the
 * next one has gone. Pure: bytes in, bytes out.
 *
 * Corruption uses the draws the engine resolved, so the event alone says which bytes changed:
 * offset = draw mod length (header bytes included: a damaged header exercises the §1.3 drop rules),
 * mask = bits 8–15 of the draw, or 1 if those are 0 (a flip always changes the byte). Two draws
 * may hit the same offset; the flips then compose, as on a real noisy line.
 */

/** A copy of `fragment` with the drawn bytes flipped. */
export function corruptFragment(fragment: Uint8Array, draws: readonly number[]): Uint8Array {
  const out = fragment.slice();
  if (out.length === 0) return out;
  for (const draw of draws) {
    const offset = draw % out.length;
    const mask = (draw >>> 8) & 0xff || 1;
    out[offset] = out[offset]! ^ mask;
  }
  return out;
}

/**
 * The first `keepBytes` bytes of a fragment (truncate, BOUNDARY_RM_TO_CLIENT_FRAGMENT): a reply cut
 * short, header included. A fragment already that short is returned as a copy, unchanged.
 */
export function truncateFragment(fragment: Uint8Array, keepBytes: number): Uint8Array {
  return fragment.slice(0, Math.min(fragment.length, Math.max(0, keepBytes)));
}

/**
 * One queue's reorder buffer: a fragment marked `reorder` is held and sent right after the next
 * fragment; at most one is held (a second `reorder` while one is held sends the held one behind it,
 * so nothing is held forever). `flush` releases what is held when the queue goes idle or closes.
 */
export class FragmentReorder<F> {
  private held: F | undefined;

  /** The fragments to send now, in order. */
  push(fragment: F, reorder: boolean): readonly F[] {
    const held = this.held;
    if (reorder && held === undefined) {
      this.held = fragment;
      return [];
    }
    this.held = undefined;
    return held === undefined ? [fragment] : [fragment, held];
  }

  flush(): readonly F[] {
    const held = this.held;
    this.held = undefined;
    return held === undefined ? [] : [held];
  }
}
