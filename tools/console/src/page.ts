/**
 * The console's one page: no build step, no framework, no network beyond its own server. It opens
 * /events (server-sent events) and redraws on each pushed snapshot; it never polls.
 *
 * The memory map is drawn (map-draw.ts, shared with the run report) from ownership runs on a canvas per region, so its cost is the number of
 * runs (a few per VM), not of frames: a 64 GiB host is 16 M frames but a few hundred runs. Colour is
 * the owner (HYP, host, RM, each VM), or for lent frames the borrower; RMM-delegated and realm granules (stage2-models.md §B2) are
 * drawn in their own colours; a band under a run marks shared or lent state (§A2) or a live grant.
 * Drag on a strip to zoom into a range, double-click to zoom out; hovering shows the run.
 *
 * A VM's stage-2 (pick it above the tables, or click its row): its IPA→PA runs with level and
 * rights, asked from the console's /stage2.json on the pick and again on each pushed snapshot.
 *
 * `window.hypmeshConsole` exposes what a test needs: the render count, the last render's duration
 * (ms), the snapshot, and each VMID's colour.
 */
import { MAP_JS } from './map-draw.js';
import { EVENT_KINDS } from './model.js';

export const PAGE_HTML = String.raw`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>hypmesh console</title>
<style>
  body { font: 13px system-ui, sans-serif; margin: 12px; background: #fafafa; color: #222; }
  h1 { font-size: 18px; margin: 0 0 8px; } h2 { font-size: 15px; margin: 16px 0 6px; }
  #errors { color: #a00; } #errors:empty { display: none; }
  .region { margin: 4px 0 10px; } .region .label { font: 12px ui-monospace, monospace; }
  .region canvas { display: block; width: 100%; height: 34px; border: 1px solid #bbb; cursor: crosshair; }
  #legend span { display: inline-block; margin-right: 10px; } #legend i { display: inline-block; width: 12px; height: 12px; vertical-align: -2px; margin-right: 3px; border: 1px solid #888; }
  #tip { position: fixed; pointer-events: none; background: #fff; border: 1px solid #888; padding: 4px 6px; font: 12px ui-monospace, monospace; white-space: pre; display: none; z-index: 2; }
  table { border-collapse: collapse; font: 12px ui-monospace, monospace; } td, th { border: 1px solid #ccc; padding: 2px 6px; text-align: left; }
  .cols { display: flex; gap: 24px; flex-wrap: wrap; align-items: flex-start; }
  #timeline { max-height: 320px; overflow-y: auto; font: 12px ui-monospace, monospace; border: 1px solid #ccc; background: #fff; }
  #timeline div { padding: 1px 4px; border-bottom: 1px solid #eee; } .k-fault { color: #a00; } .k-vm { color: #05a; } .k-notification { color: #607; } .k-service { color: #a60; }
  .swatch { display: inline-block; width: 10px; height: 10px; margin-right: 4px; border: 1px solid #888; }
</style>
</head>
<body>
<h1>hypmesh console</h1>
<div id="errors"></div>
<h2>Physical memory <small id="mapinfo"></small></h2>
<div id="legend"></div>
<div id="regions"></div>
<div id="tip"></div>
<h2>Stage-2 of <select id="s2vm"><option value="">pick a VM</option></select> <small id="s2info"></small></h2>
<table id="stage2"><thead><tr><th>IPA</th><th>PA</th><th>size</th><th>level</th><th>rights</th><th>state</th><th>device</th></tr></thead><tbody></tbody></table>
<div class="cols">
  <div><h2>VMs</h2><table id="vms"><thead><tr><th>handle</th><th>VMID</th><th>type</th><th>state</th><th>RM status</th><th>RM lists</th><th>host pages</th><th>session</th></tr></thead><tbody></tbody></table></div>
  <div><h2>Parcels</h2><table id="parcels"><thead><tr><th>handle</th><th>owner</th><th>type</th><th>state</th><th>ACL</th><th>accepted by</th><th>bytes</th><th>grant</th></tr></thead><tbody></tbody></table></div>
</div>
<h2>Timeline</h2>
<div>VM <select id="fvm"><option value="">all</option></select> <span id="fkinds"></span></div>
<div id="timeline"></div>
<script>
"use strict";
const KINDS = ${JSON.stringify(EVENT_KINDS)};
${MAP_JS}
const state = { snapshot: null, grants: new Map(), events: [], views: new Map(), renders: 0, lastRenderMs: 0 };
window.hypmeshConsole = state;
state.colourOf = colourOf;
state.holderOf = holderOf;

const el = (tag, text, cls) => { const e = document.createElement(tag); if (text !== undefined) e.textContent = text; if (cls) e.className = cls; return e; };

function legend(s) {
  const l = document.getElementById('legend'); l.textContent = '';
  for (const [c, name] of legendItems(s.vms.map((v) => v.vmid))) { const sp = el('span'); const i = el('i'); i.style.background = c; sp.append(i, name); l.append(sp); }
}


function render() {
  const t0 = performance.now();
  const s = state.snapshot; if (!s) return;
  mapState.grants = state.grants = new Map(s.grants.map((g) => [g.id, g]));
  document.getElementById('errors').textContent = s.errors.join('\n');
  const box = document.getElementById('regions');
  const total = s.regions.reduce((n, r) => n + r.count, 0);
  document.getElementById('mapinfo').textContent = '(' + bytes(total) + ', ' + s.runs.length + ' runs)';
  // One strip per region; kept across renders so a zoom survives updates.
  const keys = s.regions.map((r) => r.kind + '@' + r.base);
  for (const c of [...box.children]) if (!keys.includes(c.dataset.key)) c.remove();
  s.regions.forEach((reg, i) => {
    const key = keys[i];
    let div = [...box.children].find((c) => c.dataset.key === key);
    if (!div) { div = el('div', undefined, 'region'); div.dataset.key = key; div.append(el('div', '', 'label'), el('canvas')); box.append(div); wire(div, reg); }
    div.reg = reg;
    div.runs = runsIn(s.runs, reg.base, reg.base + reg.count);
    const view = state.views.get(key) || { from: reg.base, to: reg.base + reg.count };
    div.querySelector('.label').textContent = reg.kind + ' ' + hex(reg.base * 4096) + '–' + hex((reg.base + reg.count) * 4096 - 1) + ' (' + bytes(reg.count) + ')' + (view.from !== reg.base || view.to !== reg.base + reg.count ? '  zoomed: ' + hex(view.from * 4096) + '–' + hex(view.to * 4096 - 1) + ' (double-click to zoom out)' : '');
    drawRegion(div.querySelector('canvas'), div.runs, view);
  });
  legend(s);
  const vms = document.querySelector('#vms tbody'); vms.textContent = '';
  for (const v of s.vms) {
    const tr = el('tr'); tr.dataset.vmid = v.vmid; tr.dataset.handle = v.handle;
    const id = el('td'); const sw = el('span', undefined, 'swatch'); sw.style.background = colourOf(v.vmid); id.append(sw, String(v.vmid));
    tr.append(el('td', String(v.handle)), id, el('td', v.type), el('td', v.state), el('td', v.rmStatus), el('td', v.rmListed || '-'), el('td', String(v.hostPages)), el('td', v.session));
    vms.append(tr);
  }
  const ps = document.querySelector('#parcels tbody'); ps.textContent = '';
  for (const p of s.parcels) {
    const tr = el('tr'); tr.dataset.handle = p.handle;
    tr.append(el('td', String(p.handle)), el('td', String(p.owner)), el('td', p.transType), el('td', p.state), el('td', p.acl.join(',')), el('td', p.acceptedBy.join(',') || '-'), el('td', String(p.bytes)), el('td', p.grant ? String(p.grant) : '-'));
    ps.append(tr);
  }
  const sel = document.getElementById('fvm'), chosen = sel.value;
  const ids = [...new Set([3, ...s.vms.map((v) => v.vmid)])].sort((a, b) => a - b);
  sel.textContent = ''; sel.append(new Option('all', ''));
  for (const id of ids) sel.append(new Option('VMID ' + id, String(id)));
  sel.value = ids.map(String).includes(chosen) ? chosen : '';
  // The stage-2 picker: the host and every VM with a VMID (a realm's space has none here).
  const s2 = document.getElementById('s2vm'), s2chosen = s2.value;
  s2.textContent = ''; s2.append(new Option('pick a VM', ''));
  for (const id of ids.filter((v) => v !== 0)) s2.append(new Option((FIXED[id] ? FIXED[id][1] + ' ' : '') + 'VMID ' + id, String(id)));
  s2.value = ids.map(String).includes(s2chosen) ? s2chosen : '';
  state.renders++; state.lastRenderMs = performance.now() - t0;
}

function wire(div, reg) {
  const canvas = div.querySelector('canvas'), tip = document.getElementById('tip');
  const key = div.dataset.key;
  const viewOf = () => state.views.get(key) || { from: div.reg.base, to: div.reg.base + div.reg.count };
  const frameAt = (ev) => frameAtX(canvas, viewOf(), ev.clientX);
  let dragFrom = null;
  canvas.addEventListener('mousemove', (ev) => {
    const r = runAtX(canvas, div.runs, viewOf(), ev.clientX);
    if (!r) { tip.style.display = 'none'; return; }
    tip.textContent = runTip(r);
    tip.style.left = ev.clientX + 12 + 'px'; tip.style.top = ev.clientY + 12 + 'px'; tip.style.display = 'block';
  });
  canvas.addEventListener('mouseleave', () => { tip.style.display = 'none'; });
  canvas.addEventListener('mousedown', (ev) => { dragFrom = frameAt(ev); });
  canvas.addEventListener('mouseup', (ev) => {
    if (dragFrom === null) return;
    const a = Math.min(dragFrom, frameAt(ev)), b = Math.max(dragFrom, frameAt(ev)) + 1; dragFrom = null;
    if (b - a >= 2) { state.views.set(key, { from: a, to: b }); render(); }
  });
  canvas.addEventListener('dblclick', () => { state.views.delete(key); render(); });
}

/** Rows of a VM's stage-2 shown (a fragmented map says how many more there are). */
const S2_ROWS_SHOWN = 2000;
/** Asks the console for the picked VM's stage-2 (on a pick and on each pushed snapshot) and lists its runs. */
async function loadStage2() {
  const pick = document.getElementById('s2vm').value, body = document.querySelector('#stage2 tbody'), info = document.getElementById('s2info');
  if (pick === '') { state.stage2 = null; body.textContent = ''; info.textContent = ''; return; }
  const v = await fetch('stage2.json?vmid=' + pick).then((r) => r.json()).catch((e) => ({ vmid: Number(pick), runs: [], error: String(e) }));
  if (document.getElementById('s2vm').value !== pick) return; // another VM was picked meanwhile
  state.stage2 = v; body.textContent = '';
  const frames = v.runs.reduce((n, r) => n + r.count, 0);
  info.textContent = v.error ? v.error : '(' + v.runs.length + ' runs, ' + bytes(frames) + ' mapped' + (v.cut ? ', cut' : '') + (v.runs.length > S2_ROWS_SHOWN ? ', the first ' + S2_ROWS_SHOWN + ' listed' : '') + ')';
  for (const r of v.runs.slice(0, S2_ROWS_SHOWN)) {
    const tr = el('tr'); tr.dataset.ipa = hex(r.ipa * 4096);
    tr.append(el('td', hex(r.ipa * 4096) + '–' + hex((r.ipa + r.count) * 4096 - 1)), el('td', hex(r.pa * 4096) + '–' + hex((r.pa + r.count) * 4096 - 1)), el('td', bytes(r.count)), el('td', 'L' + r.level), el('td', r.rights), el('td', r.state), el('td', r.device ? 'device' : ''));
    body.append(tr);
  }
  state.stage2Loads = (state.stage2Loads || 0) + 1;
}
document.getElementById('s2vm').onchange = () => void loadStage2();
document.querySelector('#vms tbody').addEventListener('click', (ev) => {
  const tr = ev.target.closest('tr'); if (!tr) return;
  document.getElementById('s2vm').value = tr.dataset.vmid; void loadStage2();
});

function showEvent(e) {
  const vm = document.getElementById('fvm').value;
  const kinds = KINDS.filter((k) => document.getElementById('k-' + k).checked);
  if (!kinds.includes(e.kind) || (vm !== '' && !e.vmids.includes(Number(vm)))) return;
  const d = el('div', new Date(e.timeMs).toISOString().slice(11, 23) + ' ' + e.kind.padEnd(7) + ' ' + e.text, 'k-' + e.kind);
  d.dataset.kind = e.kind; if (e.rule) d.dataset.rule = e.rule;
  const t = document.getElementById('timeline'); t.prepend(d);
}
function redrawTimeline() { document.getElementById('timeline').textContent = ''; for (const e of state.events) showEvent(e); }

for (const k of KINDS) {
  const l = el('label'); const c = el('input'); c.type = 'checkbox'; c.checked = true; c.id = 'k-' + k; c.onchange = redrawTimeline; l.append(c, k + ' ');
  document.getElementById('fkinds').append(l);
}
document.getElementById('fvm').onchange = redrawTimeline;
window.addEventListener('resize', render);

const source = new EventSource('events');
source.addEventListener('snapshot', (m) => { state.snapshot = JSON.parse(m.data); render(); void loadStage2(); });
source.addEventListener('timeline', (m) => { state.events = JSON.parse(m.data); redrawTimeline(); });
source.addEventListener('event', (m) => { const e = JSON.parse(m.data); state.events.push(e); showEvent(e); });
</script>
</body>
</html>
`;
