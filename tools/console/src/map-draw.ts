/**
 * The memory map's drawing code, in the browser's JavaScript: the one place both the live console
 * (page.ts) and the HTML run report (report.ts) draw ownership runs from (issue 12 items 1 and 2).
 * Inlined into each page's <script>, so the report stays one self-contained file.
 *
 * Colour is the owner (HYP, host, RM, each VM), or for lent frames the borrower; RMM-delegated and
 * realm granules (stage2-models.md §B2) have their own colours; a band under a run marks shared or
 * lent state (§A2) or a live grant. Cost follows runs, not frames.
 */
export const MAP_JS = String.raw`
const FIXED = { 0: ['#8b1a1a', 'HYP'], 3: ['#9bb7d4', 'host'], 255: ['#7a4ab0', 'RM'] };
const DELEGATED = '#f0a020', REALM = '#2e9e4e';
/** The grants by id, for holderOf: set by whoever draws (the console per snapshot, the report per map). */
const mapState = { grants: new Map() };

function colourOf(vmid) {
  if (FIXED[vmid]) return FIXED[vmid][0];
  return 'hsl(' + ((vmid * 137.508) % 360).toFixed(1) + ' 70% 45%)';
}
/** Who holds a run's frames: the owner, or for frames the owner lent away (§A2 LENT) the grant's borrower. */
function holderOf(r) {
  if (r.host !== 'LENT' || !r.grant) return r.owner;
  const g = mapState.grants.get(r.grant);
  return g ? (g.borrowers[0] ?? g.acl[0] ?? r.owner) : r.owner;
}
function runColour(r) {
  if (r.granule === 'DELEGATED') return DELEGATED;
  if (r.granule !== 'NS' && r.granule !== 'UNSPECIFIED' && r.granule !== '?') return REALM;
  return colourOf(holderOf(r));
}
function bandColour(r) {
  if (r.host === 'LENT') return '#000';
  if (r.host === 'SHARED_OWNED' || r.host === 'SHARED_BORROWED' || r.guestShares > 0) return '#e8d000';
  if (r.grant) return '#555';
  return null;
}
const hex = (n) => '0x' + n.toString(16);
const bytes = (frames) => { let b = frames * 4096, u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'], i = 0; while (b >= 1024 && i < 4 && b % 1024 === 0) { b /= 1024; i++; } return b + ' ' + u[i]; };
/** Runs of one region, by binary search (runs are sorted by base). */
function runsIn(runs, from, to) {
  let lo = 0, hi = runs.length;
  while (lo < hi) { const m = (lo + hi) >> 1; if (runs[m].base + runs[m].count <= from) lo = m + 1; else hi = m; }
  const out = []; for (let i = lo; i < runs.length && runs[i].base < to; i++) out.push(runs[i]);
  return out;
}

/**
 * Draws in whole device pixels (no anti-aliased blends of two owners). Runs narrower than a pixel
 * are drawn last, one pixel wide, so a VM's few frames never vanish under the host's gigabytes.
 */
function drawRegion(canvas, runs, view) {
  const dpr = window.devicePixelRatio || 1, w = Math.round((canvas.clientWidth || 800) * dpr), h = Math.round((canvas.clientHeight || 34) * dpr);
  if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
  const g = canvas.getContext('2d');
  g.fillStyle = '#eee'; g.fillRect(0, 0, w, h);
  const span = view.to - view.from, band = Math.round(8 * dpr), body = h - band;
  const px = (f) => Math.floor(((f - view.from) / span) * w);
  const visible = runsIn(runs, view.from, view.to), thin = [];
  const paint = (r, x, x2) => {
    g.fillStyle = runColour(r); g.fillRect(x, 0, x2 - x, body);
    const b = bandColour(r); if (b) { g.fillStyle = b; g.fillRect(x, body, x2 - x, band); }
  };
  for (const r of visible) {
    const x = px(Math.max(r.base, view.from)), x2 = px(Math.min(r.base + r.count, view.to));
    if (x2 > x) paint(r, x, x2); else thin.push([r, Math.min(x, w - 1)]);
  }
  for (const [r, x] of thin) paint(r, x, x + 1);
}
/** The legend: [colour, name] for HYP, host, RM, each of vmids, then the special colours and bands. */
function legendItems(vmids) {
  const owners = [0, 3, 255, ...[...new Set(vmids)].filter((v) => !FIXED[v]).sort((a, b) => a - b)];
  return owners.map((o) => [colourOf(o), FIXED[o] ? FIXED[o][1] : 'VMID ' + o]).concat([[DELEGATED, 'RMM-delegated'], [REALM, 'realm'], ['#e8d000', 'band: shared'], ['#000', 'band: lent (drawn in the borrower\'s colour)'], ['#555', 'band: granted']]);
}
/** The frame under the pointer at clientX on a strip showing view. The drawing is the content box (the border is outside it): clientLeft/clientWidth, not the rect's. */
function frameAtX(canvas, view, clientX) {
  const rect = canvas.getBoundingClientRect();
  return Math.floor(view.from + ((clientX - rect.left - canvas.clientLeft) / canvas.clientWidth) * (view.to - view.from));
}
/**
 * The run drawn under the pointer's pixel: a run narrower than a pixel is painted over its
 * neighbours (drawRegion), so among the runs in this pixel the smallest is the one seen.
 */
function runAtX(canvas, runs, view, clientX) {
  const f = frameAtX(canvas, view, clientX), perPixel = (view.to - view.from) / canvas.clientWidth;
  return runsIn(runs, Math.floor(f - perPixel / 2), Math.ceil(f + perPixel / 2) + 1).reduce((best, x) => (best === undefined || x.count < best.count ? x : best), undefined);
}
/** A run's hover text. */
function runTip(r) {
  return 'frames ' + hex(r.base) + '–' + hex(r.base + r.count - 1) + ' (' + r.count + ', ' + bytes(r.count) + ')\nPA ' + hex(r.base * 4096) + '\nowner ' + (FIXED[r.owner] ? FIXED[r.owner][1] : 'VMID ' + r.owner) + ' (' + r.owner + ')' + (holderOf(r) !== r.owner ? ', lent to VMID ' + holderOf(r) : '') + '\nhost ' + r.host + ', hyp ' + r.hyp + ', granule ' + r.granule + '\ngrant ' + (r.grant || '-') + ', pins ' + r.pins + ', guest shares ' + r.guestShares;
}
`;
