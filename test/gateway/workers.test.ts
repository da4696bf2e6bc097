import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import net from 'node:net'
import {tmpdir} from 'node:os'
import path from 'node:path'
import type pg from 'pg'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {fixture, type Fixture} from '../identity/helpers.js'
import {isolatedEnv, targetConfigText} from '../helpers/open.js'
import {createTestDatabase, type UpstreamInfo} from '../helpers/pg.js'
import {run} from '../helpers/run.js'
import {gatewayConfigText, makePki, type TestPki} from './helpers.js'
import {aliceToken, gatewayClient, GatewayProcess, httpGet, until, type LogLine, sendCancel} from './process-helpers.js'

/** `--workers 2`: two processes on one port, psql and pg through both, cancels routed to the right one. */
describe('dbgate gateway --workers', () => {
  let f: Fixture
  let pki: TestPki
  let db: UpstreamInfo
  let dir: string
  let gw: GatewayProcess
  let port: number
  let ops: number
  let token: string

  const signInsByWorker = () => {
    const by = new Map<unknown, number>()
    for (const l of gw.lines) if (/signed in to target app/.test(l.msg)) by.set(l.worker, (by.get(l.worker) ?? 0) + 1)
    return by
  }

  beforeAll(async () => {
    ;[f, pki, db] = await Promise.all([fixture(), makePki(), createTestDatabase('gwworkers')])
    dir = await mkdtemp(path.join(tmpdir(), 'dbgate-gwworkers-'))
    const file = path.join(dir, 'gateway.yaml')
    // `lab` lets DDL and DO blocks run, and refuses reads of hr: what stands between a session and hr's rows is the catalog.
    const lab = ['allow: [engineering]', 'rules:', '  - id: no-hr-reads', '    match: {class: read, tables: ["hr.*"]}', '    action: deny', '  - id: code', '    match: {class: opaque}', '    action: allow', '  - id: ddl', '    match: {class: ddl}', '    action: allow'].join('\n')
    await writeFile(file, gatewayConfigText({pki, dir, issuer: f.dev.issuer, clientId: f.dev.cliClientId, server: ['ops: 127.0.0.1:0', 'drainTimeout: 5s'], targets: [...targetConfigText('app', db, 'allow: [engineering]'), ...targetConfigText('lab', db, lab)]}))
    await run('psql', ['-X', '-q', '-c', "create schema hr; create table hr.salaries (id int, person text); insert into hr.salaries values (1, 'WORKER-PAYROLL-SECRET'); create table public.parent (id int, person text)", db.url], {})
    gw = new GatewayProcess(file, {...isolatedEnv(), TEST_APP_PASSWORD: db.password}, ['--workers', '2'])
    ;({port, ops} = await gw.started())
    token = await aliceToken(f.signingKey, f.dev.issuer, f.dev.cliClientId)
    await until(async () => ((await httpGet(ops, '/readyz')).status === 200 ? true : undefined))
  })
  afterAll(async () => {
    gw?.kill()
    await f?.close()
    await Promise.all([dir, pki?.dir].filter(Boolean).map((d) => rm(d!, {recursive: true, force: true})))
  })

  it('serves psql and node-postgres from both workers on one port', async () => {
    for (let i = 0; i < 4; i++) {
      const r = await run('psql', ['-X', '-At', '-c', `select ${i} + 40`, `host=127.0.0.1 port=${port} sslmode=verify-full sslrootcert=${pki.ca} dbname=app user=alice@example.com`], {
        env: {...process.env, PGPASSWORD: token, PGSSLNEGOTIATION: ''},
      })
      expect(r.stderr).toBe('')
      expect(r.stdout.trim()).toBe(String(40 + i))
    }
    for (let i = 0; i < 4; i++) {
      const c = gatewayClient(port, pki.ca, token)
      await c.connect()
      expect((await c.query('select 1 as one')).rows).toEqual([{one: 1}])
      await c.end()
    }
    await until(async () => ([...signInsByWorker().values()].reduce((a, b) => a + b, 0) >= 8 ? true : undefined))
    expect([...signInsByWorker().keys()].sort()).toEqual([0, 1])
  })

  it('cancels a long statement whichever worker the CancelRequest reaches', async () => {
    const clients: pg.Client[] = []
    for (let i = 0; i < 4; i++) {
      const c = gatewayClient(port, pki.ca, token)
      await c.connect()
      clients.push(c)
    }
    const sleeps = clients.map((c) => c.query('select pg_sleep(60)').then(() => 'finished', (e: Error & {code?: string}) => e.code))
    // Every sleep is running before it is cancelled.
    await until(async () => {
      const r = await run('psql', ['-X', '-At', '-c', "select count(*) from pg_stat_activity where datname = current_database() and query = 'select pg_sleep(60)' and state = 'active'", db.url], {})
      return r.stdout.trim() === '4' ? true : undefined
    })
    // The listener hands connections to the workers in turn, so the cancels would each reach their own
    // session's worker; one connection more in between makes each reach the other worker.
    await new Promise<void>((resolve) => net.connect({host: '127.0.0.1', port}, function (this: net.Socket) {
      this.on('close', () => resolve()).on('error', () => {}).end()
    }))
    for (const c of clients) {
      const {processID, secretKey} = c as unknown as {processID: number; secretKey: number}
      await sendCancel(port, processID, secretKey)
    }
    expect(await Promise.all(sleeps)).toEqual(['57014', '57014', '57014', '57014'])
    // Some of those cancels reached the other worker and were handed over.
    expect(gw.lines.some((l: LogLine) => /a cancel request for a key of worker \d: handed to it/.test(l.msg))).toBe(true)
    await Promise.all(clients.map((c) => c.end()))
  })

  it("has the other worker read the catalog again when a person's session on one commits a change", async () => {
    // Sessions go to the workers in turn: open them until the person has one on each.
    const bySlot = new Map<number, pg.Client>()
    const opened: pg.Client[] = []
    while (bySlot.size < 2 && opened.length < 8) {
      const c = gatewayClient(port, pki.ca, token, 'lab')
      await c.connect()
      opened.push(c)
      bySlot.set((c as unknown as {processID: number}).processID % 256, c)
    }
    const [a, b] = [...bySlot.values()]
    try {
      // The reading worker has looked the relation up before the change.
      expect((await b!.query('select * from public.parent')).rows).toEqual([])
      await a!.query('do $$ begin alter table hr.salaries inherit public.parent; end $$')
      // The other worker hears of it through the primary, a moment after the committing session's reply (docs/gateway.md).
      await new Promise((r) => setTimeout(r, 300))
      const after = await b!.query('select * from public.parent').then((r) => JSON.stringify(r.rows), (e: Error & {code?: string}) => e)
      expect(typeof after === 'string' ? after : after.message).not.toContain('WORKER-PAYROLL-SECRET')
      expect(typeof after === 'string' ? after : after.code).toBe('42501')
    } finally {
      await Promise.all(opened.map((c) => c.end()))
      await run('psql', ['-X', '-q', '-c', 'alter table hr.salaries no inherit public.parent', db.url], {})
    }
  })

  it('aggregates both workers in /metrics', async () => {
    const r = await httpGet(ops, '/metrics')
    expect(r.status, `${r.body}\n${gw.lines.filter((l) => l.level === 'error').map((l) => l.msg).join('\n')}`).toBe(200)
    expect(r.body).toMatch(/^dbgate_gateway_statements_total\{target="app",decision="allow"\} ([1-9]\d+)$/m)
    expect(r.body).toMatch(/^dbgate_gateway_sessions_open\{target="app"\} 0$/m)
  })

  it('replaces a worker that dies, and is ready again', async () => {
    const victim = gw.lines.find((l) => l.worker === 1 && typeof l.pid === 'number')!.pid as number
    process.kill(victim, 'SIGKILL')
    await gw.line((l) => /worker 1 \(pid \d+\) exited \(SIGKILL\); starting a replacement/.test(l.msg))
    await until(async () => ((await httpGet(ops, '/readyz')).status === 200 ? true : undefined))
    for (let i = 0; i < 2; i++) {
      const c = gatewayClient(port, pki.ca, token)
      await c.connect()
      expect((await c.query('select 2 as two')).rows).toEqual([{two: 2}])
      await c.end()
    }
  })

  it('drains every worker on SIGTERM and exits 0', async () => {
    gw.signal('SIGTERM')
    expect(await gw.exited).toEqual({code: 0, signal: null})
    expect(gw.lines.filter((l) => /worker drained/.test(l.msg)).map((l) => l.worker).sort()).toEqual([0, 1])
  })
})
