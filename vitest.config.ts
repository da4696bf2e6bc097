import {availableParallelism} from 'node:os'
import {defineConfig} from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'test/**/*.test.tsx'],
    globalSetup: ['test/helpers/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // vitest's default is one worker fewer than the cores: one file at a time on a 2-core runner.
    // Most files wait on PostgreSQL, the tunnel and child processes, so two run the whole suite in
    // 57% of the time there (953 s against 1,670 s). Each file has a database of its own on the
    // shared server, and looks only at that database's sessions.
    maxWorkers: Math.max(2, availableParallelism() - 1),
    reporters: ['default'],
  },
})
