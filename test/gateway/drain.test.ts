import {mkdir, mkdtemp, rename, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, afterEach, beforeAll, describe, expect, it} from 'vitest'
import {fixture, type Fixture} from '../identity/helpers.js'
import {isolatedEnv, targetConfigText} from '../helpers/open.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {gatewayConfigText, makePki, type TestPki} from './helpers.js'
import {aliceToken, bucketRecordings, gatewayClient, GatewayProcess, httpGet, until} from './process-helpers.js'

/** SIGTERM drains the real binary: sessions finish, new ones are refused, the spool ships, exit 0. */
describe('dbgate gateway: SIGTERM drains', () => {
  let f: Fixture
  let pki: TestPki
  let db: UpstreamInfo
  let dir: string
  const procs: GatewayProcess[] = []

  beforeAll(async () => {
    ;[f, pki, db] = await Promise.all([fixture(), makePki(), createTestDatabase('gwdrain')])
    dir = await mkdtemp(path.join(tmpdir(), 'dbgate-gwdrain-'))
    await withClient(db.url, (c) => c.query('create table orders (id int primary key, note text)'))
  })
  afterEach(() => {
    for (const p of procs.splice(0)) p.kill()
  })
  afterAll(async () => {
    await f?.close()
    await Promise.all([dir, pki?.dir].filter(Boolean).map((d) => rm(d!, {recursive: true, force: true})))
  })

  async function start(name: string, server: string[]): Promise<{gw: GatewayProcess; port: number; ops: number; bucket: string}> {
    const sub = path.join(dir, name)
    const text = gatewayConfigText({pki, dir: sub, issuer: f.dev.issuer, clientId: f.dev.cliClientId, server: ['ops: 127.0.0.1:0', ...server], targets: targetConfigText('app', db, 'allow: [engineering]')})
    const file = path.join(dir, `${name}.yaml`)
    await writeFile(file, text)
    const gw = new GatewayProcess(file, {...isolatedEnv(), TEST_APP_PASSWORD: db.password}, ['--workers', '1'])
    procs.push(gw)
    const {port, ops} = await gw.started()
    await until(async () => ((await httpGet(ops, '/readyz')).status === 200 ? true : undefined))
    return {gw, port, ops, bucket: path.join(sub, 'bucket')}
  }

  it('keeps a session in a transaction working, refuses new connections, answers 503 on /readyz, ships the recording and exits 0', async () => {
    const {gw, port, ops, bucket} = await start('graceful', ['drainTimeout: 60s'])
    const token = await aliceToken(f.signingKey, f.dev.issuer, f.dev.cliClientId)
    const c = gatewayClient(port, pki.ca, token)
    await c.connect()
    await c.query('begin')
    await c.query("insert into orders values (1, 'before the drain')")

    gw.signal('SIGTERM')
    await until(async () => ((await httpGet(ops, '/readyz')).status === 503 ? true : undefined))
    const readyz = JSON.parse((await httpGet(ops, '/readyz')).body) as {status: string; checks: {name: string}[]}
    expect(readyz).toMatchObject({status: 'not-ready', checks: [{name: 'draining'}]})

    const late = gatewayClient(port, pki.ca, token)
    late.on('error', () => {})
    const refused = await late.connect().then(() => undefined, (e: NodeJS.ErrnoException) => e)
    expect(refused?.code).toBe('ECONNREFUSED')

    // The open session goes on: its transaction commits.
    await c.query("insert into orders values (2, 'during the drain')")
    await c.query('commit')
    await c.end()
    expect((await withClient(db.url, (x) => x.query('select id from orders order by id'))).rows).toEqual([{id: 1}, {id: 2}])

    expect(await gw.exited).toEqual({code: 0, signal: null})
    const recordings = await bucketRecordings(bucket)
    expect(recordings.some((r) => r.includes('during the drain') && r.includes('"session.end"'))).toBe(true)
    expect(gw.lines.some((l) => /drained: sessions ended and the spool shipped/.test(l.msg))).toBe(true)
  })

  it('keeps serving through a bucket outage: degraded, the spool grows, and the drain ships what waited', async () => {
    const {gw, port, ops, bucket} = await start('outage', ['drainTimeout: 60s'])
    const c = gatewayClient(port, pki.ca, await aliceToken(f.signingKey, f.dev.issuer, f.dev.cliClientId))
    await c.connect()
    await c.query('select 1')
    // The bucket goes away: a file where its directory was, so every write fails.
    await mkdir(bucket, {recursive: true})
    await rename(bucket, `${bucket}.away`)
    await writeFile(bucket, 'not a bucket')
    await c.query("insert into orders values (10, 'written during the outage')")
    const readyz = await until(async () => {
      const r = await httpGet(ops, '/readyz')
      return r.body.includes('"bucket"') ? r : undefined
    })
    expect(readyz.status).toBe(200)
    expect(JSON.parse(readyz.body)).toMatchObject({status: 'degraded', checks: [{name: 'bucket', degradesOnly: true}]})
    await until(async () => {
      const m = /^dbgate_gateway_shipping_backlog_bytes (\d+)$/m.exec((await httpGet(ops, '/metrics')).body)
      return m && Number(m[1]) > 0 ? true : undefined
    })
    expect((await c.query('select count(*)::int as n from orders where id = 10')).rows).toEqual([{n: 1}])
    await c.end()

    await rm(bucket)
    await rename(`${bucket}.away`, bucket)
    gw.signal('SIGTERM')
    expect(await gw.exited).toEqual({code: 0, signal: null})
    expect((await bucketRecordings(bucket)).some((r) => r.includes('written during the outage') && r.includes('"session.end"'))).toBe(true)
  })

  it('ends a session still open at drainTimeout with a FATAL saying the gateway is shutting down, and still exits 0', async () => {
    const {gw, port, bucket} = await start('deadline', ['drainTimeout: 1s'])
    const c = gatewayClient(port, pki.ca, await aliceToken(f.signingKey, f.dev.issuer, f.dev.cliClientId))
    const ended = new Promise<Error>((resolve) => c.on('error', resolve))
    await c.connect()
    await c.query('begin')
    await c.query("insert into orders values (3, 'never committed')")
    gw.signal('SIGTERM')
    const e = (await ended) as Error & {code?: string}
    expect(e.message).toMatch(/the dbgate gateway is shutting down/)
    expect(e.code).toBe('57P01')
    await c.end().catch(() => {})
    expect(await gw.exited).toEqual({code: 0, signal: null})
    // The transaction was rolled back, and the session's recording reached the bucket.
    expect((await withClient(db.url, (x) => x.query('select id from orders where id = 3'))).rows).toEqual([])
    expect((await bucketRecordings(bucket)).some((r) => r.includes('never committed'))).toBe(true)
  })
})
