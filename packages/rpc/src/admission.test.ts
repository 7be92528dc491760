import { Metadata, status } from '@grpc/grpc-js';
import { describe, expect, test } from 'vitest';
import { ADMISSION_DOMAIN, AdmissionLimits, CLIENT_KEY, QuotaLedger, clientName, decodeStatusDetails, principal, principalOf, type AdmissionTable } from './index.js';

const TABLE = {
  address_spaces: { kind: 'quota', counts: 'address spaces', limit: 4 },
  pages_per_call: { kind: 'cap', counts: 'pages', limit: 1024 },
} as const satisfies AdmissionTable<string>;

const md = (pairs: Record<string, string | string[]>): Metadata => {
  const m = new Metadata();
  for (const [k, v] of Object.entries(pairs)) for (const x of [v].flat()) m.add(k, x);
  return m;
};

describe('client name (x-hypmesh-client)', () => {
  test('absent is anonymous; a canonical name is itself', () => {
    expect(clientName(md({}))).toBe('anonymous');
    expect(clientName(md({ [CLIENT_KEY]: 'vmm' }))).toBe('vmm');
    expect(principalOf({ metadata: md({ 'x-hypmesh-caller-vmid': '3', [CLIENT_KEY]: 'tool-1.a_b' }) }).key).toBe('3/tool-1.a_b');
  });

  test.each([['VMM'], ['-x'], [''], ['a'.repeat(64)], ['a b']])('%j is INVALID_ARGUMENT naming the key', (name) => {
    expect(() => clientName(md({ [CLIENT_KEY]: name }))).toThrowError(expect.objectContaining({ code: status.INVALID_ARGUMENT, details: expect.stringContaining(CLIENT_KEY) }));
  });

  test('given twice is INVALID_ARGUMENT', () => {
    expect(() => clientName(md({ [CLIENT_KEY]: ['a', 'b'] }))).toThrowError(expect.objectContaining({ code: status.INVALID_ARGUMENT }));
  });
});

describe('AdmissionLimits: table defaults, --quota overrides', () => {
  const tool = principal(3, 'tool');
  const vmm = principal(3, 'vmm');

  test('NAME=N sets every client; CLIENT:NAME=N one client; unlimited is Infinity', () => {
    const l = new AdmissionLimits(TABLE, ['address_spaces=8', 'vmm:address_spaces=unlimited']);
    expect(l.limit('address_spaces', tool)).toBe(8);
    expect(l.limit('address_spaces', vmm)).toBe(Infinity);
    expect(l.limit('pages_per_call', tool)).toBe(1024);
  });

  test.each([['nope=1'], ['address_spaces'], ['address_spaces=-1'], ['Tool:address_spaces=1'], ['address_spaces=1e3']])('bad spec %j is refused at start-up, naming it', (spec) => {
    expect(() => new AdmissionLimits(TABLE, [spec])).toThrow(JSON.stringify(spec));
  });

  test('a cap refuses a request over it with RESOURCE_EXHAUSTED cap_<rule>, saying how much was asked', () => {
    const l = new AdmissionLimits(TABLE);
    expect(l.capRefusal('pages_per_call', tool, 1024, 'ranges')).toBeUndefined();
    const d = decodeStatusDetails(l.capRefusal('pages_per_call', tool, 1025, 'ranges')!);
    expect(d.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(d.errorInfo).toEqual({ reason: 'cap_pages_per_call', domain: ADMISSION_DOMAIN, metadata: { principal: '3/tool', asked: '1025', limit: '1024' } });
  });
});

describe('QuotaLedger', () => {
  const tool = principal(3, 'tool');
  const vmm = principal(3, 'vmm');

  test('charges count per principal up to the limit; releasing an object gives it back', () => {
    const q = new QuotaLedger(new AdmissionLimits(TABLE));
    for (let i = 0; i < 4; i++) {
      expect(q.refusal('address_spaces', tool)).toBeUndefined();
      q.charge('address_spaces', tool, `as${i}`);
    }
    const d = decodeStatusDetails(q.refusal('address_spaces', tool)!);
    expect(d.errorInfo?.reason).toBe('quota_address_spaces');
    expect(d.errorInfo?.metadata).toEqual({ principal: '3/tool', held: '4', asked: '1', limit: '4' });
    expect(q.refusal('address_spaces', vmm)).toBeUndefined(); // another client is not starved
    q.release('address_spaces', 'as2');
    expect(q.holding('address_spaces', tool)).toBe(3);
    q.release('address_spaces', 'as2'); // twice: nothing more
    expect(q.holding('address_spaces', tool)).toBe(3);
  });

  test('partial release and re-charge stay with the first principal', () => {
    const q = new QuotaLedger(new AdmissionLimits(TABLE));
    q.charge('address_spaces', tool, 'x', 3);
    q.charge('address_spaces', vmm, 'x', 1);
    expect(q.holding('address_spaces', tool)).toBe(4);
    expect(q.holding('address_spaces', vmm)).toBe(0);
    q.release('address_spaces', 'x', 2);
    expect(q.holding('address_spaces', tool)).toBe(2);
    q.clear();
    expect(q.holding('address_spaces', tool)).toBe(0);
  });
});
