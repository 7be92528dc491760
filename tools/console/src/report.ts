/**
 * The HTML run report (issue 12 item 2): one self-contained page (inline CSS, JavaScript and data,
 * no network) for a `hypmesh sim` run or a `hypmesh check` of a history: the verdict of each
 * checker, the first violation with the step after which it was found and the step that most likely
 * caused it, the faults injected, the ownership map at the start, at the failure and at the end
 * (drawn by the console's own map code, map-draw.ts), and the run's timeline.
 *
 * It lives beside the console because it draws the same map from the same RunView (model.ts): one
 * place for the drawing. Pure: the caller (tools/cli html-report.ts) turns a run into a RunReport
 * and writes the string.
 *
 * Text is rendered on the server side (escaped), so the verdicts, failure and timeline read even
 * with scripts off; only the map strips need the script (canvas).
 */
import { MAP_JS } from './map-draw.js';
import type { GrantView, RegionView, RunView } from './model.js';

/** One line of the run's timeline. `kind` is free text (sim: step, fault, teardown, ...; check: invoke, ok, ...). */
export interface ReportEntry {
  readonly kind: string;
  readonly text: string;
  /** The schedule step or history entry it belongs to, as shown (e.g. "#83", "final"). */
  readonly step?: string;
  /** An injected fault's rule id. */
  readonly rule?: string;
}

export interface ReportVerdict {
  readonly check: string;
  readonly status: 'pass' | 'fail' | 'skipped' | 'not run';
  readonly details: readonly string[];
}

/** The ownership map at one moment of the run. */
export interface ReportMap {
  readonly moment: 'start' | 'failure' | 'end';
  /** What the moment is, e.g. "after step 599, final checks". */
  readonly note: string;
  readonly runs: readonly RunView[];
  readonly grants: readonly GrantView[];
}

export interface ReportFailure {
  /** The first violation the checkers reported. */
  readonly violation: string;
  /** Where it was found, e.g. "after step #42" or "final checks, after step #599". */
  readonly where: string;
  /** Index into `timeline` of the failing step's line (or of the violation line). */
  readonly at?: number;
  /** Index into `timeline` of the likely cause, and why it is thought so. */
  readonly cause?: { readonly at: number; readonly why: string };
}

export interface RunReport {
  readonly title: string;
  /** The command that reproduces the run. */
  readonly command: string;
  readonly ok: boolean;
  readonly summary: readonly string[];
  readonly verdicts: readonly ReportVerdict[];
  readonly failure?: ReportFailure;
  /** Indices into `timeline` of the injected faults. */
  readonly faults: readonly number[];
  readonly maps: readonly ReportMap[];
  readonly timeline: readonly ReportEntry[];
}

/** Timeline lines the page holds; a longer run keeps its first ones and says how many were cut. */
export const REPORT_TIMELINE_MAX = 50_000;

const ENTITY = /\b(parcel|label|VMID|vm|grant|handle)\s+(0x[0-9a-f]+|\d+)/gi;

/** The entities a violation names ("parcel 10", "label 5", "VMID 128"), each with its hex/decimal spellings. */
export function namedEntities(violation: string): string[] {
  const out = new Set<string>();
  for (const m of violation.matchAll(ENTITY)) {
    const n = Number(m[2]);
    const word = m[1]!.toLowerCase();
    for (const w of word === 'vm' ? ['vm', 'vmid'] : word === 'vmid' ? ['vmid', 'vm'] : [word]) {
      out.add(`${w} ${n}`);
      out.add(`${w} 0x${n.toString(16)}`);
    }
  }
  return [...out];
}

const mentions = (text: string, phrase: string): boolean => new RegExp(`\\b${phrase.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\b`, 'i').test(text);

/**
 * The timeline line most likely to have caused `violation`, among lines before `before` of a kind
 * in `actions` (what a client or actor did): the last one that names an entity the violation names;
 * else the action hit by the last injected fault (a lost reply names nothing, but its fault does);
 * else none. A heuristic, and the report says which rule picked the line.
 */
export function likelyCause(timeline: readonly ReportEntry[], violation: string, before: number, actions: ReadonlySet<string>): { at: number; why: string } | undefined {
  const names = namedEntities(violation);
  for (let i = Math.min(before, timeline.length) - 1; i >= 0; i--) {
    const e = timeline[i]!;
    const hit = actions.has(e.kind) ? names.find((n) => mentions(e.text, n)) : undefined;
    if (hit !== undefined) return { at: i, why: `the last ${e.kind} line before the failure that names ${hit}` };
  }
  for (let i = Math.min(before, timeline.length) - 1; i >= 0; i--) {
    const e = timeline[i]!;
    if (e.kind !== 'fault') continue;
    // The action the fault hit: the next action line of the same step, else the fault line itself.
    let at = i;
    for (let k = i + 1; k < before && k < timeline.length; k++)
      if (actions.has(timeline[k]!.kind) && timeline[k]!.step === e.step) {
        at = k;
        break;
      }
    const none = names.length === 0 ? '' : `; no earlier line names ${names.filter((_, j) => j % 2 === 0).join(' or ')}`;
    return { at, why: `the last injected fault before the failure (rule ${e.rule ?? '?'}) hit it${none}` };
  }
  return undefined;
}

/** The regions of a map, as the runs show them: contiguous runs of one kind (holes split regions). */
export function regionsOf(runs: readonly RunView[]): RegionView[] {
  const out: { kind: string; base: number; count: number }[] = [];
  for (const r of runs) {
    const last = out[out.length - 1];
    if (last !== undefined && last.kind === r.kind && last.base + last.count === r.base) last.count += r.count;
    else out.push({ kind: r.kind, base: r.base, count: r.count });
  }
  return out;
}

const esc = (s: string): string => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
/** JSON inside <script>: no "</script>" or "<!--" can end it early. */
const scriptJson = (v: unknown): string => JSON.stringify(v).replace(/</g, '\\u003c');

function entryLine(e: ReportEntry, i: number, r: RunReport): string {
  const marks = [r.failure?.at === i ? 'failing' : '', r.failure?.cause?.at === i ? 'cause' : ''].filter((m) => m !== '');
  const cls = ['e', `k-${e.kind.replace(/[^a-z0-9-]/gi, '')}`, ...marks].join(' ');
  const tag = marks.length === 0 ? '' : ` <b class="mark">← ${marks.map((m) => (m === 'failing' ? 'failure found here' : 'likely cause')).join(', ')}</b>`;
  return `<div id="e-${i}" class="${cls}" data-kind="${esc(e.kind)}"${e.rule === undefined ? '' : ` data-rule="${esc(e.rule)}"`}><span class="n">${i}</span> <span class="s">${esc(e.step ?? '')}</span> <span class="k">${esc(e.kind)}</span> ${esc(e.text)}${tag}</div>`;
}

/** The report page. */
export function reportHtml(r: RunReport): string {
  const shown = r.timeline.slice(0, REPORT_TIMELINE_MAX);
  const cut = r.timeline.length - shown.length;
  const kinds = [...new Set(shown.map((e) => e.kind))];
  const link = (at: number | undefined, text: string): string => (at === undefined || at >= shown.length ? esc(text) : `<a href="#e-${at}">${esc(text)}</a>`);
  const f = r.failure;
  const failure =
    f === undefined
      ? ''
      : `<section id="failure"><h2>Failure</h2>
<div>First violation: <code id="first-violation">${esc(f.violation)}</code></div>
<div>Found: <span id="failing-step">${link(f.at, f.where)}</span></div>
<div>Likely cause: <span id="cause">${f.cause === undefined ? 'not found (no line names what the violation names, and no fault was injected)' : `${link(f.cause.at, `${r.timeline[f.cause.at]!.kind} ${r.timeline[f.cause.at]!.step ?? ''}`.trim())} — <code>${esc(r.timeline[f.cause.at]!.text)}</code> <small>(${esc(f.cause.why)})</small>`}</span></div>
</section>`;
  const verdicts = r.verdicts
    .map((v) => `<tr data-check="${esc(v.check)}" data-status="${v.status}" class="v-${v.status.replace(' ', '-')}"><td>${esc(v.check)}</td><td>${v.status.toUpperCase()}</td><td>${v.details.map(esc).join('<br>')}</td></tr>`)
    .join('\n');
  const faults = r.faults.length === 0 ? '<p>none</p>' : `<ol>${r.faults.map((i) => `<li>${link(i, `${r.timeline[i]!.step ?? ''} ${r.timeline[i]!.text}`.trim())}</li>`).join('')}</ol>`;
  const maps = r.maps.map((m, i) => `<div class="map" data-moment="${m.moment}" data-map="${i}"><h3>${esc(m.moment)} <small>${esc(m.note)} (${m.runs.length} runs)</small></h3><div class="strips"></div></div>`).join('\n');
  const data = { maps: r.maps.map((m) => ({ moment: m.moment, runs: m.runs, grants: m.grants, regions: regionsOf(m.runs) })) };
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<title>${esc(r.title)}</title>
<style>
  body { font: 13px system-ui, sans-serif; margin: 12px; background: #fafafa; color: #222; }
  h1 { font-size: 18px; margin: 0 0 8px; } h2 { font-size: 15px; margin: 16px 0 6px; } h3 { font-size: 13px; margin: 10px 0 4px; }
  #verdict { display: inline-block; padding: 2px 10px; font-weight: bold; color: #fff; } #verdict.pass { background: #2a7d2a; } #verdict.fail { background: #b00020; }
  #failure { border: 2px solid #b00020; background: #fff4f4; padding: 6px 10px; } #failure div { margin: 3px 0; }
  code { font: 12px ui-monospace, monospace; } .cmd { font: 12px ui-monospace, monospace; background: #eee; padding: 2px 6px; }
  table { border-collapse: collapse; font: 12px ui-monospace, monospace; } td, th { border: 1px solid #ccc; padding: 2px 6px; text-align: left; vertical-align: top; }
  .v-fail td:nth-child(2) { color: #b00020; font-weight: bold; } .v-pass td:nth-child(2) { color: #2a7d2a; } .v-skipped td:nth-child(2), .v-not-run td:nth-child(2) { color: #888; }
  .region { margin: 2px 0 6px; } .region .label { font: 12px ui-monospace, monospace; }
  .region canvas { display: block; width: 100%; height: 28px; border: 1px solid #bbb; }
  .legend span { display: inline-block; margin-right: 10px; } .legend i { display: inline-block; width: 12px; height: 12px; vertical-align: -2px; margin-right: 3px; border: 1px solid #888; }
  #tip { position: fixed; pointer-events: none; background: #fff; border: 1px solid #888; padding: 4px 6px; font: 12px ui-monospace, monospace; white-space: pre; display: none; z-index: 2; }
  #timeline { font: 12px ui-monospace, monospace; border: 1px solid #ccc; background: #fff; max-height: 480px; overflow-y: auto; }
  #timeline .e { padding: 1px 4px; border-bottom: 1px solid #f0f0f0; white-space: pre-wrap; } .e .n { color: #999; } .e .s { color: #05a; } .e .k { color: #666; }
  .k-fault { color: #a00; } .k-violation { color: #b00020; font-weight: bold; } .failing { background: #ffe0e0; } .cause { background: #fff2b0; } .mark { color: #b00020; }
  :target { outline: 2px solid #05a; }
</style>
</head>
<body>
<h1>${esc(r.title)} <span id="verdict" class="${r.ok ? 'pass' : 'fail'}">${r.ok ? 'PASS' : 'FAIL'}</span></h1>
<div>Reproduce: <span class="cmd">${esc(r.command)}</span></div>
${failure}
<ul id="summary">${r.summary.map((s) => `<li>${esc(s)}</li>`).join('')}</ul>
<h2>Checkers</h2>
<table id="verdicts"><thead><tr><th>checker</th><th>verdict</th><th>details</th></tr></thead><tbody>
${verdicts}
</tbody></table>
<h2>Faults injected (${r.faults.length})</h2>
<div id="faults">${faults}</div>
<h2>Ownership map</h2>
<div class="legend" id="legend"></div>
<div id="maps">
${maps}
</div>
<div id="tip"></div>
<h2>Timeline (${r.timeline.length} lines${cut > 0 ? `, the first ${shown.length} shown` : ''})</h2>
<div id="kinds">${kinds.map((k) => `<label><input type="checkbox" checked data-kind="${esc(k)}"> ${esc(k)}</label> `).join('')}</div>
<div id="timeline">
${shown.map((e, i) => entryLine(e, i, r)).join('\n')}
</div>
<script type="application/json" id="report-data">${scriptJson(data)}</script>
<script>
"use strict";
${MAP_JS}
const report = { maps: JSON.parse(document.getElementById('report-data').textContent), drawn: 0 };
window.hypmeshReport = report;
const el = (tag, text, cls) => { const e = document.createElement(tag); if (text !== undefined) e.textContent = text; if (cls) e.className = cls; return e; };
const tip = document.getElementById('tip');
const vmids = new Set();
function drawMaps() {
  const t0 = performance.now();
  report.drawn = 0;
  report.maps.maps.forEach((m, i) => {
    const box = document.querySelector('[data-map="' + i + '"] .strips');
    box.textContent = '';
    mapState.grants = new Map(m.grants.map((g) => [g.id, g]));
    for (const reg of m.regions) {
      const div = el('div', undefined, 'region');
      div.append(el('div', reg.kind + ' ' + hex(reg.base * 4096) + '–' + hex((reg.base + reg.count) * 4096 - 1) + ' (' + bytes(reg.count) + ')', 'label'));
      const canvas = el('canvas'); div.append(canvas); box.append(div);
      const runs = runsIn(m.runs, reg.base, reg.base + reg.count), view = { from: reg.base, to: reg.base + reg.count };
      drawRegion(canvas, runs, view);
      for (const r of runs) vmids.add(holderOf(r));
      canvas.addEventListener('mousemove', (ev) => {
        mapState.grants = new Map(m.grants.map((g) => [g.id, g]));
        const r = runAtX(canvas, runs, view, ev.clientX);
        if (!r) { tip.style.display = 'none'; return; }
        tip.textContent = runTip(r); tip.style.left = ev.clientX + 12 + 'px'; tip.style.top = ev.clientY + 12 + 'px'; tip.style.display = 'block';
      });
      canvas.addEventListener('mouseleave', () => { tip.style.display = 'none'; });
      report.drawn++;
    }
  });
  const l = document.getElementById('legend'); l.textContent = '';
  for (const [c, name] of legendItems([...vmids])) { const sp = el('span'); const i = el('i'); i.style.background = c; sp.append(i, name); l.append(sp); }
  report.drawMs = performance.now() - t0;
}
drawMaps();
window.addEventListener('resize', drawMaps);
for (const box of document.querySelectorAll('#kinds input')) box.onchange = () => {
  const off = new Set([...document.querySelectorAll('#kinds input')].filter((b) => !b.checked).map((b) => b.dataset.kind));
  for (const d of document.querySelectorAll('#timeline .e')) d.style.display = off.has(d.dataset.kind) ? 'none' : '';
};
</script>
</body>
</html>
`;
}
