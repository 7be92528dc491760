/**
 * State rows as JSON text that keeps what JSON loses: bigint, Map, Set and Uint8Array come back as
 * themselves (tagged objects `{"$bigint": "…"}`, `{"$map": [[k, v], …]}`, `{"$set": […]}`,
 * `{"$bytes": "<base64>"}`). Properties that are undefined are left out, as JSON does, so they read
 * back as undefined. Plain data only: class instances other than these are not restored.
 */

const TAGS = ['$bigint', '$map', '$set', '$bytes'] as const;

export function encodeState(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (typeof v === 'bigint') return { $bigint: v.toString() };
    if (v instanceof Map) return { $map: [...v.entries()] };
    if (v instanceof Set) return { $set: [...v] };
    if (v instanceof Uint8Array) return { $bytes: Buffer.from(v).toString('base64') };
    return v;
  });
}

export function decodeState(text: string): unknown {
  return JSON.parse(text, (_key, v: unknown) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
    const keys = Object.keys(v);
    if (keys.length !== 1 || !(TAGS as readonly string[]).includes(keys[0]!)) return v;
    const tagged = v as Partial<Record<(typeof TAGS)[number], unknown>>;
    if (keys[0] === '$bigint') return BigInt(tagged.$bigint as string);
    if (keys[0] === '$map') return new Map(tagged.$map as [unknown, unknown][]);
    if (keys[0] === '$set') return new Set(tagged.$set as unknown[]);
    return new Uint8Array(Buffer.from(tagged.$bytes as string, 'base64'));
  });
}
