import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import type pg from 'pg'
import {untilProbe} from '../helpers/wait.js'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {SessionReader} from '../../src/audit/read.js'
import {loadKeyRing} from '../../src/audit/signing.js'
import {signerTrust} from '../../src/audit/trust.js'
import {verifySession} from '../../src/audit/verify.js'
import type {SessionSummary} from '../../src/audit/index-cache.js'
import {people, watchNotices, type People} from '../approvals/helpers.js'
import {TestS3} from '../audit/s3rver.js'
import {isolatedEnv, targetConfigText} from '../helpers/open.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {run} from '../helpers/run.js'
import {mint} from '../identity/helpers.js'
import {makePki, type TestPki} from './helpers.js'
import {replicaClient, S3_ENV, spooledLogs, spooledText, startReplica, writeReplicaConfig, type GatewayProcess} from './process-helpers.js'

const BIN = path.resolve('bin/run.js')
const TARGET = ['allow: [engineering]', 'reviewers: [dba]', 'approvals:', '  expiry: 15m'].join('\n')

/** Waits on an asynchronous fact (the bucket's or a process's state), not a fixed time. */
const until = <T>(probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> => untilProbe(probe, 'the probe answers', {timeoutMs, intervalMs: 200})

/**
 * Two `dbgate gateway` processes on loopback, identical but for their state directories, sharing
 * only one bucket on s3rver: approvals, recordings and keys cross between them through it.
 */
describe('dbgate gateway: two replicas sharing one bucket', () => {
  let p: People
  let pki: TestPki
  let db: UpstreamInfo
  let s3: TestS3
  let dir: string
  let env: NodeJS.ProcessEnv
  const replicas: Record<'a' | 'b', {dir: string; config: string; gw?: GatewayProcess}> = {a: {dir: '', config: ''}, b: {dir: '', config: ''}}
  const clients: pg.Client[] = []
  const email = 'alice@example.com'

  const token = () => mint(p.f.signingKey, {iss: p.f.dev.issuer, aud: p.f.dev.cliClientId, sub: 'alice', email, groups: ['engineering'], exp: Math.floor(Date.now() / 1000) + 3600})
  async function connect(which: 'a' | 'b'): Promise<pg.Client> {
    const c = replicaClient(replicas[which].gw!.port, pki, email, await token())
    clients.push(c)
    await c.connect()
    return c
  }
  const reader = () => new SessionReader(s3.bucket('dbgate'))
  /** The shipped session whose log holds `marker`, once it has the wanted status. */
  async function shipped(marker: string, status: SessionSummary['status']): Promise<{summary: SessionSummary; text: string}> {
    return until(async () => {
      const r = reader()
      for (const s of await r.list()) {
        if (s.status !== status) continue
        const {text} = await r.loadSummary(s)
        if (text.includes(marker)) return {summary: s, text}
      }
      return undefined
    })
  }
  const dbgate = (args: string[], extra: NodeJS.ProcessEnv = {}) => run(process.execPath, [BIN, ...args], {env: {...env, ...S3_ENV, NO_COLOR: '1', ...extra}, timeoutMs: 60_000})

  beforeAll(async () => {
    ;[p, pki, db, s3] = await Promise.all([people(), makePki(), createTestDatabase('gwha'), TestS3.start()])
    await p.login('dave')
    dir = await mkdtemp(path.join(tmpdir(), 'dbgate-gwha-'))
    env = {...isolatedEnv(), ...S3_ENV, TEST_APP_PASSWORD: db.password}
    for (const which of ['a', 'b'] as const) {
      const rdir = path.join(dir, which)
      const config = await writeReplicaConfig({dir: rdir, pki, s3, issuer: p.f.dev.issuer, clientId: p.f.dev.cliClientId, targets: targetConfigText('app', db, TARGET), server: ['pipelineIdle: 1s']})
      replicas[which] = {dir: rdir, config}
    }
    const [a, b] = await Promise.all([startReplica(replicas.a.config, env), startReplica(replicas.b.config, env)])
    replicas.a.gw = a
    replicas.b.gw = b
  })
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.end().catch(() => {})))
    await Promise.all(Object.values(replicas).map((r) => r.gw?.stop()))
    await p?.close()
    await s3?.dispose()
    await Promise.all([dir, pki?.dir].filter(Boolean).map((d) => rm(d!, {recursive: true, force: true})))
  })

  it('runs a statement held on replica A once a reviewer approves it through the bucket, with replica B\'s configuration', async () => {
    const c = await connect('a')
    const w = watchNotices(c)
    const held = c.query('create table approved_on_a (id int)')
    const id = await w.approvalId()
    // The reviewer is dave, signed in on his own machine, using replica B's configuration file.
    const r = await dbgate(['approve', id, '--config', replicas.b.config, '--reason', 'ok from b'], p.env('dave'))
    expect(r.stderr).not.toMatch(/error/i)
    expect(r.stdout).toMatch(new RegExp(`Approved ${id} \\(alice@example\\.com on app\\)`))
    expect((await held).command).toBe('CREATE')
    const exists = await withClient(db.url, async (q) => (await q.query("select to_regclass('approved_on_a') is not null as ok")).rows[0].ok)
    expect(exists).toBe(true)
    // The session goes on on A after the approval.
    expect((await c.query('select 2 as two')).rows).toEqual([{two: 2}])
    await c.end()
    const {text} = await shipped('approved_on_a', 'ended')
    expect(text).toMatch(/"approvalId":"apr-/)
  })

  it('lands the sessions of both replicas in one bucket, where they list, verify with both keys named, and make the report', async () => {
    for (const which of ['a', 'b'] as const) {
      const c = await connect(which)
      await c.query(`select 'via-replica-${which}' as marker`)
      await c.end()
    }
    await Promise.all([shipped('via-replica-a', 'ended'), shipped('via-replica-b', 'ended')])
    const {a, b} = {a: replicas.a.gw!, b: replicas.b.gw!}

    const both = await dbgate(['sessions', 'verify', '--config', replicas.a.config, '--signer', a.keyId, '--signer', b.keyId])
    expect(both.code, both.stdout + both.stderr).toBe(0)
    const lines = both.stdout.trim().split('\n').filter((l) => /^(OK|FAIL)/.test(l))
    expect(lines.length).toBeGreaterThanOrEqual(3)
    expect(lines.every((l) => l.startsWith('OK'))).toBe(true)
    // Naming one replica's key alone fails the other's sessions: each replica signed some.
    for (const only of [a, b]) {
      const one = await dbgate(['sessions', 'verify', '--config', replicas.a.config, '--signer', only.keyId])
      expect(one.code).toBe(1)
      expect(one.stdout).toMatch(/UNTRUSTED_SIGNER/)
      expect(one.stdout).toMatch(/^OK/m)
    }

    const list = await dbgate(['sessions', 'list', '--config', replicas.b.config, '--json'])
    expect(list.code).toBe(0)
    const listed = (JSON.parse(list.stdout) as {sessions: {sessionId: string; user?: string; target: string}[]}).sessions
    const ours = await reader().list()
    expect(listed.map((s) => s.sessionId).sort()).toEqual(ours.map((s) => s.sessionId).sort())
    expect(listed.every((s) => s.target === 'app')).toBe(true)

    const out = path.join(dir, 'report')
    const report = await dbgate(['report', '--config', replicas.b.config, '--since', '1d', '--out', out, '--json', '--signer', a.keyId, '--signer', b.keyId])
    expect(report.code).toBe(0)
    const made = JSON.parse(report.stdout) as {summary: {sessions: number; approved: number}; gaps: {kind: string}[]}
    expect(made.summary.sessions).toBe(ours.length)
    expect(made.summary.approved).toBe(1)
    expect(made.gaps.filter((g) => ['verification-failed', 'key-error', 'unverified-identity'].includes(g.kind))).toEqual([])
  })

  it('keeps what replica A recorded before a SIGKILL in its spool, ships it when A starts again, and B serves the reconnect meanwhile', async () => {
    const c = await connect('a')
    const closed = new Promise<Error | undefined>((resolve) => {
      c.on('error', resolve)
      c.once('end', () => resolve(undefined))
    })
    expect((await c.query("select 'before-the-kill' as marker")).rows).toEqual([{marker: 'before-the-kill'}])
    // Everything recorded up to the kill: wait until the spool holds the statement the client saw.
    const name = await until(async () => {
      for (const n of await spooledLogs(replicas.a.dir)) if ((await spooledText(replicas.a.dir, n)).includes('before-the-kill')) return n
      return undefined
    })
    const before = await spooledText(replicas.a.dir, name)
    replicas.a.gw!.kill()
    expect(await replicas.a.gw!.exited).toEqual({code: null, signal: 'SIGKILL'})
    await closed
    await expect(c.query('select 1')).rejects.toThrow()

    // The other replica takes the reconnect while A is down.
    const again = await connect('b')
    expect((await again.query("select 'after-the-kill' as marker")).rows).toEqual([{marker: 'after-the-kill'}])
    await again.end()
    // A's recording is still in A's spool only.
    expect(await spooledLogs(replicas.a.dir)).toContain(name)

    replicas.a.gw = await startReplica(replicas.a.config, env)
    const {text, summary} = await shipped('before-the-kill', 'interrupted')
    expect(text.startsWith(before.slice(0, before.lastIndexOf('\n') + 1))).toBe(true)
    expect(text).toMatch(/"type":"session\.interrupted"/)
    expect(summary.totals.statements).toBeGreaterThanOrEqual(1)
    await until(async () => ((await spooledLogs(replicas.a.dir)).includes(name) ? undefined : true))
    const {keys} = await loadKeyRing(s3.bucket('dbgate'))
    const trust = signerTrust([replicas.a.gw.keyId], undefined)
    // The restarted A kept its key (same state directory): the sealed log verifies under it.
    expect(verifySession(text, keys, {trust})).toMatchObject({ok: true, status: 'interrupted'})
  })

  it('goes on serving while the bucket is down, spools what it records, and ships all of it once the bucket is back', async () => {
    await s3.down()
    try {
      for (const which of ['a', 'b'] as const) {
        for (let i = 0; i < 3; i++) {
          const c = await connect(which)
          expect((await c.query(`select 'outage-${which}-${i}' as marker`)).rows).toEqual([{marker: `outage-${which}-${i}`}])
          await c.end()
        }
      }
      // The spool grows: every one of those sessions waits there, ended.
      for (const which of ['a', 'b'] as const) {
        const texts = await until(async () => {
          const all = await Promise.all((await spooledLogs(replicas[which].dir)).map((n) => spooledText(replicas[which].dir, n)))
          const ours = all.filter((t) => t.includes(`outage-${which}-`) && t.includes('"type":"session.end"'))
          return ours.length === 3 ? ours : undefined
        })
        expect(texts).toHaveLength(3)
      }
    } finally {
      await s3.up()
    }
    for (const which of ['a', 'b'] as const) for (let i = 0; i < 3; i++) await shipped(`outage-${which}-${i}`, 'ended')
    for (const which of ['a', 'b'] as const) await until(async () => ((await spooledLogs(replicas[which].dir)).length === 0 ? true : undefined))
    const verify = await dbgate(['sessions', 'verify', '--config', replicas.a.config, '--signer', 'gw-ha'])
    expect(verify.code).toBe(0)
    expect(verify.stdout).not.toMatch(/^FAIL/m)
  })
})
