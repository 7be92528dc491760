#!/usr/bin/env node
// The `hypmesh` bin npm links at install time. It is a committed file because npm links bins
// before anything is built: a bin pointing into dist/ is skipped on a fresh clone, and
// `npx hypmesh` then finds no executable. On a clone that was installed but not yet built, this
// builds once (`npm run build` at the repository root, about 20 s) and then runs the CLI.
import { execSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const main = new URL('../dist/main.js', import.meta.url);
if (!existsSync(main)) {
  const root = fileURLToPath(new URL('../../../', import.meta.url));
  process.stderr.write('hypmesh: first run on this checkout: building it (npm run build)…\n');
  try {
    execSync('npm run build', { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
  } catch {
    process.stderr.write(`hypmesh: the build failed; run \`npm run build\` in ${root} to see why\n`);
    process.exit(2);
  }
}
await import(main.href);
