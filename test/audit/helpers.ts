import {mkdtempSync} from 'node:fs'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import type {StatementData} from '../../src/audit/events.js'
import {SessionReader} from '../../src/audit/read.js'
import {Recorder} from '../../src/audit/recorder.js'
import {publishKey, type InstallationKey} from '../../src/audit/signing.js'
import {FileBucket, openBucket, type Bucket} from '../../src/bucket/index.js'
import type {Identity} from '../../src/identity/types.js'
import type {StatementEvent} from '../../src/proxy/seam.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import type {RawClient} from '../helpers/raw-client.js'

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

/** The auditor's environment of one test file: a cache of its own, and no bucket or config from the machine. */
export function auditorEnv(opts: {dataHome?: boolean} = {}): void {
  Object.assign(process.env, {XDG_CACHE_HOME: mkdtempSync(join(tmpdir(), 'dbgate-cache-'))})
  // The auditor's own data home too (where commands keep what they learn), for tests that run several.
  if (opts.dataHome) process.env.XDG_DATA_HOME = mkdtempSync(join(tmpdir(), 'dbgate-data-'))
  delete process.env.DBGATE_BUCKET
  delete process.env.DBGATE_CONFIG
}

/** A new directory bucket of this run, as the URL a config names it by. */
export function localBucketUrl(name: string): string {
  return `file://${mkdtempSync(join(tmpdir(), `dbgate-${name}-`))}`
}

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

/**
 * A live recorded session of alice's in a spool (a new one, or `shared`'s), with a bucket that
 * trusts `key`: `write(n)` records n more statements of varied length, with a non-ASCII name, and
 * flushes them. For the shipper's tests of growing logs.
 */
export async function liveSession(key: InstallationKey, sessionId: string, startedAt: Date, shared?: {bucket: Bucket; spoolDir: string}) {
  const bucket: Bucket = shared?.bucket ?? new FileBucket(await tempDir('dbgate-bucket-'))
  if (!shared) await publishKey(bucket, alice, key)
  const spoolDir = shared?.spoolDir ?? (await tempDir('dbgate-spool-'))
  const rec = await Recorder.open({signer: key, dbgateVersion: '0.1.0', spoolDir, checkpointEvery: 50})
  const session = rec.startSession({sessionId, identity: alice, target: 'prod', database: 'app', dbUser: 'app_rw', client: {address: '127.0.0.1:1'}, startedAt})
  let n = 0
  const write = async (statements: number): Promise<void> => {
    for (let i = 0; i < statements; i++, n++) session.statement(stmt(sessionId, `select ${n} as "é ${'x'.repeat(n % 300)}"`))
    await session.flush()
  }
  return {bucket, spoolDir, session, write}
}

/** Every statement event recorded in the sessions shipped to `bucketUrl`, read as an auditor's tools read them. */
export async function recordedStatements(bucketUrl: string): Promise<StatementData[]> {
  const reader = new SessionReader(openBucket(bucketUrl), mkdtempSync(join(tmpdir(), 'dbgate-cache-')))
  const out: StatementData[] = []
  for (const session of await reader.list()) out.push(...(await reader.loadSummary(session)).events.filter((e) => e.type === 'statement').map((e) => e.data as StatementData))
  return out
}

/**
 * An auditor's environment, a new database with `setup` run in it, and a tunnel that records into
 * a bucket of its own, with a wire-level client signed in: for tests of what protocol sequences
 * leave in the recording.
 */
export async function recordedRawTunnel(name: string, setup: string): Promise<{db: UpstreamInfo; t: PipelineTunnel; raw: RawClient; bucketUrl: string}> {
  auditorEnv()
  const db = await createTestDatabase(name)
  await withClient(db.url, (c) => c.query(setup))
  const bucketUrl = localBucketUrl(name)
  const t = await openPipelineTunnel(db, '', {top: `bucket: ${bucketUrl}`})
  return {db, t, raw: await t.raw(), bucketUrl}
}
