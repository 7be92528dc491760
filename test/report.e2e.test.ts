/**
 * The HTML run report in a real browser (issue 12 items 2 and 3): `hypmesh sim --html` of a run
 * that fails (examples/faults/sim-lost-lend-reply.json: HLOS loses the reply of its 2nd MEM_LEND,
 * the orphaned parcel survives teardown and the final check names it), and `hypmesh check --html`
 * of a failing scenario's history, each opened from file:// in Debian's headless Chromium with
 * the network blocked (an offline context, and every non-file request aborted and counted).
 *
 * Asserted: the verdict, the first violation, where it was found, the likely cause (the step the
 * injected fault hit, or the operation naming the violation's label), the failing checker's row,
 * the three ownership maps drawn, and that the page asked for nothing beyond its own file.
 *
 * Screenshot: test-artifacts/report.png (CI keeps it); with HYPMESH_CONSOLE_DOCS_SCREENSHOT=1 also
 * docs/report.png (the README's). Without Chromium the file skips with a
 * warning, unless HYPMESH_REQUIRE_CHROMIUM=1.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI = join(ROOT, 'tools/cli/dist/main.js');
const CHROMIUM = process.env.HYPMESH_CHROMIUM ?? '/usr/bin/chromium';
const PLAN = join(ROOT, 'examples/faults/sim-lost-lend-reply.json');

const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) {
  if (process.env.HYPMESH_REQUIRE_CHROMIUM === '1') throw new Error(`HYPMESH_REQUIRE_CHROMIUM=1 but there is no Chromium at ${CHROMIUM} (apt-get install chromium)`);
  console.warn(`test/report.e2e.test.ts: skipped, no Chromium at ${CHROMIUM} (apt-get install chromium, or set HYPMESH_CHROMIUM)`);
}

function hypmesh(cwd: string, ...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('HYPMESH_')));
  return spawnSync(process.execPath, [CLI, ...args], { cwd, env, encoding: 'utf8', timeout: 120_000 });
}

describe.skipIf(!haveChromium)('HTML run reports, opened offline in headless Chromium', () => {
  let browser: Browser;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hypmesh-report-'));
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Opens `file` offline; returns the page and every request that was not the file itself (all aborted). */
  async function openOffline(file: string): Promise<{ page: Page; blocked: string[]; errors: string[] }> {
    const context = await browser.newContext({ offline: true, viewport: { width: 1280, height: 900 } });
    const blocked: string[] = [];
    const errors: string[] = [];
    await context.route('**/*', (route) => {
      const url = route.request().url();
      if (url.startsWith('file:')) return route.continue();
      blocked.push(url);
      return route.abort();
    });
    const page = await context.newPage();
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(pathToFileURL(file).href);
    await page.waitForFunction('window.hypmeshReport !== undefined && window.hypmeshReport.drawn > 0');
    return { page, blocked, errors };
  }

  test('a failing sim run: the report shows FAIL, the first violation, the final checks as where, and the faulted step as the cause', async () => {
    const file = join(dir, 'sim.html');
    const r = hypmesh(dir, 'sim', '--seed', '7', '--steps', '600', '--check-every', '100', '--faults', PLAN, '--html', file);
    expect(r.status, r.stderr).toBe(1);
    expect(r.stdout).toMatch(/^report: .*sim\.html \(\d+ bytes\)$/m);
    expect(r.stdout).toMatch(/final: parcel \d+ \(LEND, owner 3\) survived, unreported/);
    // One file: nothing loaded from elsewhere (no src=, no href= but in-page anchors).
    const html = readFileSync(file, 'utf8');
    expect(html).not.toMatch(/\ssrc=/);
    expect([...html.matchAll(/href="([^"]*)"/g)].every((m) => m[1]!.startsWith('#'))).toBe(true);

    const { page, blocked, errors } = await openOffline(file);
    expect(await page.locator('#verdict').textContent()).toBe('FAIL');
    expect(await page.locator('#first-violation').textContent()).toMatch(/^final: parcel \d+ \(LEND, owner 3\) survived, unreported$/);
    expect(await page.locator('#failing-step').textContent()).toMatch(/final checks, after step #599/);
    // The cause: the step the lose-lend-reply fault hit (its reply was lost, so no line names the parcel).
    const cause = await page.locator('#cause').textContent();
    expect(cause).toMatch(/^step #\d+ — hlos\.lend ERR .*lose-lend-reply/);
    expect(cause).toMatch(/last injected fault before the failure \(rule lose-lend-reply\)/);
    // The link goes to that line of the timeline, marked as the likely cause.
    await page.locator('#cause a').click();
    const target = page.locator('#timeline .e:target');
    expect(await target.getAttribute('class')).toMatch(/\bcause\b/);
    expect(await target.textContent()).toMatch(/likely cause/);
    expect(await page.locator('#timeline .e.failing').textContent()).toMatch(/violation final: parcel \d+ .*failure found here/);
    // The verdict of each checker: only the final checks failed.
    expect(await page.locator('#verdicts tr[data-status="fail"]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-check')))).toEqual(['final checks']);
    expect(await page.locator('#verdicts tbody tr').count()).toBe(4);
    // The fault injected, and the ownership map at the start, at the failure and at the end, drawn.
    expect(await page.locator('#faults li').allTextContents()).toEqual([expect.stringMatching(/fault lose-lend-reply at CLIENT_TO_RM MEM_LEND/)]);
    expect(await page.locator('.map').evaluateAll((ms) => ms.map((m) => m.getAttribute('data-moment')))).toEqual(['start', 'failure', 'end']);
    expect(await page.locator('.map canvas').count()).toBe(6); // two regions (MMIO, RAM) per map
    // The host's colour is drawn (a pixel of the start map's RAM strip, read back from the canvas).
    const pixel = (await page.evaluate(`Array.from(document.querySelectorAll('.map canvas')[1].getContext('2d').getImageData(3, 3, 1, 1).data)`)) as number[];
    expect(pixel.slice(0, 3)).toEqual([0x9b, 0xb7, 0xd4]);
    // Hovering a run names it (the console's hover code).
    const startRam = page.locator('.map canvas').nth(1);
    await startRam.scrollIntoViewIfNeeded();
    const box = (await startRam.boundingBox())!;
    await page.mouse.move(box.x + 5, box.y + 5);
    expect(await page.locator('#tip').textContent()).toMatch(/^frames 0x80000–.*\nPA 0x80000000\nowner host \(3\)/);
    await page.mouse.move(0, 0);
    expect(blocked).toEqual([]);
    expect(errors).toEqual([]);
    // A figure for the report, not a bound (timings belong in `npm run bench`).
    const drawMs = (await page.evaluate('window.hypmeshReport.drawMs')) as number;
    console.log(`report of a 600-step sim run: ${html.length} bytes, ${await page.locator('#timeline .e').count()} timeline lines, maps drawn in ${drawMs.toFixed(1)} ms`);
    mkdirSync(join(ROOT, 'test-artifacts'), { recursive: true });
    await page.evaluate('window.scrollTo(0, 0)'); // the cause link scrolled to the timeline
    await page.screenshot({ path: join(ROOT, 'test-artifacts/report.png'), fullPage: false });
    if (process.env.HYPMESH_CONSOLE_DOCS_SCREENSHOT === '1') await page.screenshot({ path: join(ROOT, 'docs/report.png'), fullPage: false });
    await page.context().close();
  }, 180_000);

  test('hypmesh check --html of a failing history: the first violation and the operation on its label', async () => {
    const history = join(dir, 'orphan.jsonl');
    expect(hypmesh(dir, 'scenario', 'linux-append-orphan', '--history', history).status).toBe(1);
    const file = join(dir, 'check.html');
    const r = hypmesh(dir, 'check', history, '--html', file);
    expect(r.status, r.stderr).toBe(1);
    const { page, blocked, errors } = await openOffline(file);
    expect(await page.locator('#verdict').textContent()).toBe('FAIL');
    const first = await page.locator('#first-violation').textContent();
    const label = /label (\d+)/.exec(first ?? '')?.[1];
    expect(label).toBeDefined();
    expect(await page.locator('#failing-step').textContent()).toMatch(/at the run observation/);
    expect(await page.locator('#cause').textContent()).toMatch(new RegExp(`gh_rm_mem_share label ${label}\\b`));
    expect(await page.locator('#verdicts tr[data-status="fail"]').count()).toBeGreaterThan(0);
    expect(await page.locator('.map').count()).toBeGreaterThanOrEqual(2);
    expect(blocked).toEqual([]);
    expect(errors).toEqual([]);
    await page.context().close();
  }, 180_000);
});
