/**
 * deploy/k8s/sim-campaign.yaml, the simulation campaign as an Indexed Job (README "Deterministic
 * simulation"): valid against the Kubernetes API schema (kubernetes-validate, strict: no unknown
 * fields), and its pods really split the seed range by JOB_COMPLETION_INDEX.
 *
 * The validator is a pip package that .ci/run installs (pip install kubernetes-validate; it carries
 * the schemas, so it validates offline). Locally the schema test is skipped only when the
 * `kubernetes-validate` command is absent; in CI (HYPMESH_REQUIRE_K8S_VALIDATE=1) its absence fails.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';

const manifest = fileURLToPath(new URL('../deploy/k8s/sim-campaign.yaml', import.meta.url));
const cli = fileURLToPath(new URL('../tools/cli/dist/main.js', import.meta.url));
const hasValidator = spawnSync('kubernetes-validate', ['--version'], { encoding: 'utf8' }).status === 0;

describe('deploy/k8s/sim-campaign.yaml', () => {
  test.skipIf(!hasValidator && process.env['HYPMESH_REQUIRE_K8S_VALIDATE'] !== '1')('k8s_manifest_schema_valid: kubernetes-validate --strict accepts it', () => {
    expect(hasValidator, 'kubernetes-validate is not installed (pip install kubernetes-validate)').toBe(true);
    const out = execFileSync('kubernetes-validate', ['--strict', manifest], { encoding: 'utf8' });
    expect(out).toMatch(/passed for resource job\/hypmesh-sim-campaign/);
  });

  test('k8s_indexed_job_splits_seeds: an index runs its own slice of HYPMESH_SIM_SEEDS', () => {
    const text = readFileSync(manifest, 'utf8');
    expect(text).toMatch(/completionMode: Indexed/);
    const perIndex = Number(/"--seeds-per-index", "(\d+)"/.exec(text)![1]);
    const completions = Number(/completions: (\d+)/.exec(text)![1]);
    const [lo, hi] = /value: "(\d+)\.\.(\d+)"/.exec(text)!.slice(1).map(Number) as [number, number];
    // The pods together cover the range exactly.
    expect(perIndex * completions).toBe(hi - lo + 1);
    // Index 2 of a 0..9 range, 3 seeds per index: seeds 6..8, run by the real CLI (few steps).
    const run = spawnSync(process.execPath, [cli, 'sim', '--seeds-per-index', '3', '--steps', '20', '--check-every', '20'], {
      encoding: 'utf8',
      env: { ...process.env, HYPMESH_SIM_SEEDS: '0..9', JOB_COMPLETION_INDEX: '2' },
    });
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout.match(/^seed (\d+):/gm)).toEqual(['seed 6:', 'seed 7:', 'seed 8:']);
  }, 60_000);
});
