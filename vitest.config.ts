import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: {
    // Tests run against workspace sources, not the built dist/ (see each package's exports).
    conditions: ['@hypmesh/source'],
  },
  test: {
    include: ['packages/**/src/**/*.test.ts', 'services/**/src/**/*.test.ts', 'tools/**/src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 30_000,
  },
});
