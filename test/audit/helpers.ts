import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import type {Identity} from '../../src/identity/types.js'
import type {StatementEvent} from '../../src/proxy/seam.js'

export const alice: Identity = {
  subject: 'u-alice',
  email: 'alice@example.com',
  name: 'Alice',
  groups: ['engineering'],
  issuer: 'https://login.example.com',
  kind: 'human',
  tokenHash: 'a'.repeat(64),
  tokenId: 'jti-1',
  expiresAt: new Date('2030-01-01T00:00:00Z'),
}

export const mallory: Identity = {...alice, subject: 'u-mallory', email: 'mallory@example.com', tokenHash: 'b'.repeat(64)}

const made: string[] = []

export async function tempDir(prefix = 'dbgate-audit-'): Promise<string> {
  const path = await mkdtemp(join(tmpdir(), prefix))
  made.push(path)
  return path
}

/** For afterAll: removes every directory `tempDir` made in this file. */
export async function removeTempDirs(): Promise<void> {
  await Promise.all(made.splice(0).map((p) => rm(p, {recursive: true, force: true})))
}

export function stmt(sessionId: string, sql: string, over: Partial<StatementEvent> = {}): StatementEvent {
  return {
    sessionId,
    connectionId: 1,
    protocol: 'simple',
    sql,
    verdict: {action: 'allow'},
    startedAt: new Date('2026-03-01T10:00:01.000Z'),
    durationMs: 3,
    commandTags: ['SELECT 1'],
    rows: 1,
    outcome: 'ok',
    ...over,
  }
}
