import type {TestProject} from 'vitest/node'
import {startEmbeddedPg} from '../../src/dev/embedded-pg.js'

declare module 'vitest' {
  export interface ProvidedContext {
    pgUrl: string
  }
}

/** One real PostgreSQL for the whole run; tests isolate themselves with their own databases. */
export default async function setup(project: TestProject) {
  if (process.env.DBGATE_TEST_PG_URL) {
    project.provide('pgUrl', process.env.DBGATE_TEST_PG_URL)
    return
  }
  const pg = await startEmbeddedPg()
  project.provide('pgUrl', pg.url())
  return async () => {
    await pg.stop()
  }
}
