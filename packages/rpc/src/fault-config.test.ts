import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { FaultEngine } from '@hypmesh/fault';
import { armFromFile, faultLogLine, parseFaultSeed } from './fault-config.js';

const EXAMPLE = new URL('../../../examples/faults/linux-append-orphan.json', import.meta.url).pathname;

describe('faults from configuration', () => {
  test('arms an example plan file', () => {
    const e = new FaultEngine({ nowMs: () => 0 });
    expect(armFromFile(e, EXAMPLE, 1)).toEqual({ ok: true, value: 2 });
  });

  test('a bad plan is refused naming the file and the path', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hypmesh-fault-'));
    const file = join(dir, 'bad.json');
    writeFileSync(file, JSON.stringify({ rules: [{ id: 'a', boundary: 'CLIENT_TO_RM', match: { probability: 2 }, duplicate: {} }] }));
    const e = new FaultEngine({ nowMs: () => 0 });
    expect(armFromFile(e, file, 1)).toEqual({ ok: false, error: `${file}: rules[0].match.probability: must be within [0, 1]` });
    expect(armFromFile(e, join(dir, 'missing.json'), 1).ok).toBe(false);
  });

  test.each([
    ['42', 42],
    ['0xffffffff', 0xffff_ffff],
  ])('seed %s', (text, seed) => {
    expect(parseFaultSeed(text)).toEqual({ ok: true, value: seed });
  });

  test.each(['-1', '4294967296', 'x', ''])('seed %j is refused', (text) => {
    expect(parseFaultSeed(text).ok).toBe(false);
  });

  test('one JSON line per fault', () => {
    const e = new FaultEngine({ nowMs: () => 5 });
    e.arm({ rules: [{ id: 'a', boundary: 'CLIENT_TO_RM', match: {}, action: { kind: 'drop' } }] }, 3);
    e.arm({ rules: [{ id: 'a', boundary: 'VMM_TO_RM', match: {}, action: { kind: 'drop' } }] }, 3);
    const d = e.decide({ boundary: 'VMM_TO_RM', rmMessage: 'MEM_LEND' });
    if (!d.fault) throw new Error('expected a fault');
    expect(JSON.parse(faultLogLine(d.event))).toEqual({
      fault: { ruleId: 'a', boundary: 'BOUNDARY_VMM_TO_RM', rmMessage: 'MEM_LEND', opIndex: '1', globalOpIndex: '1', seed: 3, action: { drop: {} }, timeMs: '5' },
    });
  });
});
