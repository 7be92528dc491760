import { runSim } from '@hypmesh/sim';
const steps = Number(process.argv[2] ?? 2000), rate = Number(process.argv[3] ?? 0), seed = Number(process.argv[4] ?? 1);
const t = performance.now();
const r = await runSim({ seed, steps, faultRate: rate, checkEvery: Number(process.argv[5] ?? 1), keepLog: true });
const ms = performance.now() - t;
console.log(r.ok, r.failure, 'faults', r.faultsInjected, 'leaked', r.leaked.length, 'hash', r.logHash, 'steps/s', Math.round(steps / ms * 1000));
console.log(r.log.filter(l => process.env.GREP ? l.includes(process.env.GREP) : true).slice(0, 30).join('\n'));
const counts = {}; for (const l of r.log) { const m = l.match(/^#\d+ (\S+) (ok|ERR \S+ \S+|skip [^\n]*)/); if (m) { const k = m[1] + ' ' + m[2].split(' ').slice(0,3).join(' '); counts[k] = (counts[k] ?? 0) + 1; } }
console.log(Object.entries(counts).sort((a,b)=>b[1]-a[1]).slice(0,60));
console.log(r.leaked);
