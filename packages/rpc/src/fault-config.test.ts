import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { FaultEngine } from '@hypmesh/fault';
import { armFromFile, faultLogLine, parseFaultSeed, processFaultEngine } from './fault-config.js';

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

describe('processFaultEngine: the engine a service main builds from its flags', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hypmesh-fault-'));
  const planFile = (rules: unknown[]): string => {
    const file = join(dir, `plan-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(file, JSON.stringify({ rules }));
    return file;
  };

  test('no flags: an unarmed engine with seed 0', () => {
    const r = processFaultEngine({}, { writeLine: () => {} });
    expect(r.ok && { seed: r.value.seed, rules: r.value.rulesArmed, listed: r.value.engine.list() }).toEqual({ seed: 0, rules: 0, listed: { seed: 0, rules: [] } });
  });

  test('a plan and a seed: armed, and each fault is one JSON line', () => {
    const lines: string[] = [];
    const file = planFile([{ id: 'slow', boundary: 'BOUNDARY_CLIENT_TO_CORE', match: { method: 'Translate' }, delay: { fixedMs: 5 } }]);
    const r = processFaultEngine({ faults: file, faultSeed: '0x10' }, { writeLine: (l) => lines.push(l), nowMs: () => 9 });
    if (!r.ok) throw new Error(r.error);
    expect(r.value).toMatchObject({ seed: 16, rulesArmed: 1 });
    r.value.engine.decide({ boundary: 'CLIENT_TO_CORE', method: 'Translate' });
    expect(lines.map((l) => JSON.parse(l) as unknown)).toEqual([
      { fault: { ruleId: 'slow', boundary: 'BOUNDARY_CLIENT_TO_CORE', method: 'Translate', opIndex: '1', globalOpIndex: '1', seed: 16, action: { delay: { delayMs: 5 } }, timeMs: '9' } },
    ]);
  });

  test('a bad seed or plan is refused with every problem named', () => {
    expect(processFaultEngine({ faultSeed: 'x' })).toMatchObject({ ok: false });
    const file = planFile([
      { id: 'a', boundary: 'BOUNDARY_CLIENT_TO_RM', match: { probability: 2 }, duplicate: {} },
      { id: 'b', boundary: 'BOUNDARY_VMM_TO_RM', match: {}, failBefore: { domainError: { errno: 'EPERM' } } },
    ]);
    const r = processFaultEngine({ faults: file });
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error).toContain('rules[0].match.probability');
      expect(r.error).toContain('rules[1].failBefore.domainError: at VMM_TO_RM only an RM error');
    }
  });
});
