/**
 * The CLI's scenario and check commands as a user runs them (tools/cli/dist/main.js): both
 * Linux-driver scenarios print their finding and exit 1 (the checker reports it), and `hypmesh
 * check` judges a written history: exit 0 when valid, 1 on a violation, 2 on a malformed file.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { ROOT } from './support/processes.js';

const hypmesh = (...args: string[]) => {
  const r = spawnSync(process.execPath, [join(ROOT, 'tools/cli/dist/main.js'), ...args], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
};
const dir = mkdtempSync(join(tmpdir(), 'hypmesh-scenario-'));

describe('hypmesh scenario', () => {
  test('linux-append-orphan: the checker reports the orphaned parcel', () => {
    const history = join(dir, 'orphan.jsonl');
    const r = hypmesh('scenario', 'linux-append-orphan', '--history', history);
    expect(r.code).toBe(1);
    expect(r.out).toContain("the error path's MEM_RECLAIM returned -16, which gh_rm_mem_lend_common ignores");
    expect(r.out).toContain('FAIL  no_orphaned_parcel');
    expect(r.out).toMatch(/parcel 0x0 \(label 79\) of VM 3: RM still holds it \(INIT\), its memory is still lent or shared \(the core grant is there\), and VM 3 no longer knows the handle/);
    // The written history carries the finding: `hypmesh check` reaches the same verdict.
    const c = hypmesh('check', history);
    expect(c.code).toBe(1);
    expect(c.out).toContain('FAIL  no_orphaned_parcel');
  });
  test('linux-unchecked-reply-size: the driver keeps handle 0x6b6b0000 and the real parcel is orphaned', () => {
    const r = hypmesh('scenario', 'linux-unchecked-reply-size');
    expect(r.code).toBe(1);
    expect(r.out).toContain('gh_rm_mem_share returned 0 with handle 0x6b6b0000, read from a 2-byte reply: 2 of its 4 bytes came from beyond the reply');
    expect(r.out).toContain('gh_rm_mem_reclaim(0x6b6b0000) returned -22');
    expect(r.out).toContain('FAIL  no_orphaned_parcel');
  });
  test('an unknown scenario is refused with the known names', () => {
    const r = hypmesh('scenario', 'nope');
    expect(r.code).toBe(2);
    expect(r.err).toContain('known: linux-append-orphan, linux-unchecked-reply-size');
  });
});

describe('hypmesh check', () => {
  const observe = (phase: string) => ({ type: 'observe', phase, parcels: [], ownership: ['0x80000+0x100 owner=3 host=OWNED'], invariantViolations: [], clientHandles: { 3: [] } });
  test('a valid history: every check passes, exit 0', () => {
    const f = join(dir, 'valid.jsonl');
    const lines = [observe('boot'), { type: 'invoke', process: 0, f: 'mem_share', kind: 'create_parcel', label: 1 }, { type: 'fail', process: 0, f: 'mem_share', error: 'NOMEM' }, observe('run'), observe('final')];
    writeFileSync(f, lines.map((l) => JSON.stringify(l)).join('\n'));
    const r = hypmesh('check', f);
    expect(r.code).toBe(0);
    expect(r.out).toContain('PASS  failed_absent');
    expect(r.out.trimEnd().endsWith('history valid')).toBe(true);
  });
  test('a malformed history: exit 2, the bad line named', () => {
    const f = join(dir, 'bad.jsonl');
    writeFileSync(f, '{"type":"observe"}\nnot json\n');
    const r = hypmesh('check', f);
    expect(r.code).toBe(2);
    expect(r.err).toContain('line 2: not JSON');
  });
});
