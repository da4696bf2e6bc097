/**
 * An approval for one execution of a Parse covers what the reviewer saw: the statement as judged
 * against the catalog then. The proxy binds an approved Parse, and executes its portal, without
 * judging it again (it would only be held again), so a change another session of the same tunnel
 * commits in between (a function body replaced under the approved call) made the approved
 * statement run code nobody approved, and that policy denies. Such an approval now lapses.
 */
import {serialize} from 'pg-protocol'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {decide} from '../../src/approvals/review.js'
import {listRequests} from '../../src/approvals/store.js'
import {openBucket, type Bucket} from '../../src/bucket/index.js'
import {buildTunnelHooks} from '../../src/pipeline/index.js'
import type {DbgateConfig} from '../../src/config/types.js'
import {loadedConfig, openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {codes, errorOf, type RawClient} from '../helpers/raw-client.js'
import {waitFor} from '../helpers/wait.js'
import {people, tempBucketUrl, type People} from './helpers.js'

const TARGET = [
  'allow: [engineering]',
  'reviewers: [dba]',
  'approvals:',
  '  expiry: 15m',
  'tunnel: {changeWait: 1s}',
  'rules:',
  '  - id: no-locks',
  '    match: {functions: [pg_advisory_lock]}',
  '    action: deny',
  '  - id: calls-review',
  '    match: {functions: [public.reviewed]}',
  '    action: require_approval',
  '  - id: tables-review',
  '    match: {command: create_table}',
  '    action: require_approval',
  '  - id: ddl',
  '    match: {class: ddl}',
  '    action: allow',
  '  - id: code',
  '    match: {class: opaque, command: [create_function]}',
  '    action: allow',
].join('\n')

const CALL = 'select public.reviewed(g) from generate_series(1, 3) g'

describe('an approval for one execution, and a change another session commits before it runs', () => {
  let p: People
  let db: UpstreamInfo
  let bucket: Bucket
  let config: DbgateConfig
  let t: PipelineTunnel
  let lockId = 4300

  beforeAll(async () => {
    p = await people()
    db = await createTestDatabase()
    const bucketUrl = tempBucketUrl()
    bucket = openBucket(bucketUrl)
    config = loadedConfig(db, TARGET, `identity:\n  issuer: ${p.f.dev.issuer}\n  clientId: ${p.f.dev.cliClientId}\nbucket: ${bucketUrl}`).config
    for (const u of ['alice', 'bob']) await p.login(u)
    t = await openPipelineTunnel(db, TARGET, {
      top: `bucket: ${bucketUrl}`,
      identity: {issuer: p.f.dev.issuer, clientId: p.f.dev.cliClientId, env: p.env('alice')},
      hooks: (ctx) => buildTunnelHooks({...ctx, approvalPollMs: 100}),
    })
  }, 120_000)
  afterAll(async () => {
    await t?.close().catch(() => {})
    await p?.close()
  })

  const direct = <T>(sql: string) => withClient(db.url, (c) => c.query(sql)) as Promise<T>
  const locksHeld = async (id: number) => ((await direct<{rows: {n: number}[]}>(`select count(*)::int as n from pg_locks where locktype = 'advisory' and database = (select oid from pg_database where datname = current_database()) and objid = ${id}`)).rows[0]!.n)

  /** Sends an unnamed Parse of `sql` (and `more`), has bob approve it, and returns the replies up to ParseComplete. */
  async function approvedParse(b: RawClient, sql: string, ...more: Buffer[]): Promise<string> {
    b.send(serialize.parse({text: sql}), ...more, serialize.flush())
    let id: string | undefined
    await waitFor(async () => (id = (await listRequests(bucket)).find((v) => v.request.sql === sql && !v.outcome)?.request.id) !== undefined, 'the request is filed')
    await decide({bucket, config, reviewer: await p.reviewer('bob')}, {id: id!, action: 'approve'})
    const seen: string[] = []
    for (;;) {
      const m = await b.next()
      seen.push(m.code)
      if (m.code === (more.length > 0 ? '2' : '1') || m.code === 'E') return seen.filter((c) => c !== 'N').join('')
    }
  }

  /** The approved call's function with a body that only returns, made through the tunnel so that it reads it again at once. */
  async function harmless(): Promise<void> {
    const a = await t.client()
    try {
      await a.query(`create or replace function public.reviewed(int) returns int language plpgsql stable as $f$ begin return $1; end $f$`)
    } finally {
      await a.end()
    }
  }

  /** Another session replaces the approved call's function with a body policy denies, and commits. */
  async function replaced(id: number): Promise<void> {
    const a = await t.client()
    try {
      await a.query(`create or replace function public.reviewed(int) returns int language plpgsql stable as $f$ begin perform pg_advisory_lock(${id}); return $1; end $f$`)
      // A call of it now is refused: the new body is denied.
      expect(await a.query('select public.reviewed(1)').then(() => 'ran', (e: Error & {code?: string}) => e.code)).toBe('42501')
    } finally {
      await a.end()
    }
  }

  it('refuses to bind an approved Parse, or execute its portal, once another session committed a change', async () => {
    // Ways the approved statement runs after the change: its Bind, or the Execute of a portal bound before.
    const RUNS: Record<string, {bound: boolean}> = {'Bind and Execute after the commit': {bound: false}, 'Execute of a portal bound before the commit': {bound: true}}
    for (const [shape, {bound}] of Object.entries(RUNS)) {
      await harmless()
      const id = ++lockId
      const b = await t.raw()
      try {
        expect(await approvedParse(b, CALL, ...(bound ? [serialize.bind({})] : [])), shape).toBe(bound ? '12' : '1')
        await replaced(id)
        b.send(...(bound ? [] : [serialize.bind({})]), serialize.execute({}), serialize.sync())
        const replies = await b.untilReady()
        expect(errorOf(replies)?.code, `${shape}: ${codes(replies)}`).toBe('55P03')
        expect(errorOf(replies)?.message, shape).toMatch(/after this statement was approved, so the approval no longer covers what it would run/)
        expect(await locksHeld(id), shape).toBe(0)
      } finally {
        b.end()
      }
    }
  })

  it('still binds an approved Parse when nothing changed, and an approved change through the extended protocol', async () => {
    await harmless()
    const b = await t.raw()
    try {
      expect(await approvedParse(b, CALL)).toBe('1')
      b.send(serialize.bind({}), serialize.execute({}), serialize.sync())
      expect(codes(await b.untilReady())).toBe('2DDDCZ')
      // The approved statement's own commit does not lapse its approval.
      expect(await approvedParse(b, 'create table approved_here (id int)')).toBe('1')
      b.send(serialize.bind({}), serialize.execute({}), serialize.sync())
      expect(codes(await b.untilReady())).toBe('2CZ')
      expect((await direct<{rows: unknown[]}>(`select 1 from pg_class where relname = 'approved_here'`)).rows).toHaveLength(1)
    } finally {
      b.end()
    }
  })
})
