import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {fixture, type Fixture} from '../identity/helpers.js'
import {isolatedEnv, targetConfigText} from '../helpers/open.js'
import {createTestDatabase, type UpstreamInfo} from '../helpers/pg.js'
import {waitFor} from '../helpers/wait.js'
import {gatewayConfigText, makePki, type TestPki} from './helpers.js'
import {aliceToken, gatewayClient, GatewayProcess, httpGet} from './process-helpers.js'

/** One counter's value in a Prometheus text exposition (0 when absent). */
function counter(text: string, name: string): number {
  const m = new RegExp(`^${name} ([0-9.e+-]+)$`, 'm').exec(text)
  return m ? Number(m[1]) : 0
}

/** `dbgate gateway --workers 2`: each worker gives memory back once quiet, and /metrics counts it. */
describe('dbgate gateway: memory given back when idle, in /metrics and the debug log', () => {
  let f: Fixture
  let pki: TestPki
  let db: UpstreamInfo
  let dir: string
  let gw: GatewayProcess

  beforeAll(async () => {
    ;[f, pki, db] = await Promise.all([fixture(), makePki(), createTestDatabase('gwidle')])
    dir = await mkdtemp(path.join(tmpdir(), 'dbgate-gwidle-'))
    const file = path.join(dir, 'gateway.yaml')
    await writeFile(file, gatewayConfigText({pki, dir, issuer: f.dev.issuer, clientId: f.dev.cliClientId, server: ['ops: 127.0.0.1:0', 'log: {level: debug}'], targets: targetConfigText('app', db, 'allow: [engineering]')}))
    gw = new GatewayProcess(file, {...isolatedEnv(), TEST_APP_PASSWORD: db.password, DBGATE_IDLE_MEMORY_RELEASE: undefined}, ['--workers', '2'])
    await gw.started()
  })
  afterAll(async () => {
    gw?.signal('SIGTERM')
    await gw?.exited
    await f?.close()
    await Promise.all([dir, pki?.dir].filter(Boolean).map((d) => rm(d!, {recursive: true, force: true})))
  })

  it('counts releases, bytes and pause once the load stops', {timeout: 150_000}, async () => {
    const metrics = async () => {
      const r = await httpGet(gw.ops, '/metrics')
      return r.status === 200 ? r.body : undefined
    }
    // Both workers answer the primary's aggregation once both have started.
    const before = await waitFor(metrics, '/metrics to answer', {timeoutMs: 30_000, intervalMs: 250})
    // Exported from the start (at 0), so a rate() over them is 0 rather than absent.
    expect(before).toMatch(/^dbgate_gateway_idle_memory_releases_total 0$/m)
    expect(before).toMatch(/^dbgate_gateway_idle_memory_released_bytes_total 0$/m)

    const token = await aliceToken(f.signingKey, f.dev.issuer, f.dev.cliClientId)
    const clients = await Promise.all(Array.from({length: 8}, async () => {
      const c = gatewayClient(gw.port, pki.ca, token)
      await c.connect()
      return c
    }))
    await Promise.all(clients.map(async (c, i) => {
      for (let n = 0; n < 300; n++) await c.query('select $1::int as n, md5($1::text) as h', [n * 8 + i])
      const big = await c.query("select g, md5(g::text) as h, repeat('x', 40) as pad from generate_series(1, 30000) g")
      expect(big.rowCount).toBe(30000)
    }))
    await Promise.all(clients.map((c) => c.end()))

    // The worker's debug line says what it gave back. (Waiting on the log, not on /metrics: a scrape
    // every few hundred milliseconds is work for the workers, enough to keep them from being quiet.)
    type Release = {newSpaceBefore: number; newSpaceAfter: number; heapBefore: number; heapAfter: number}
    // (A first attempt may find V8 keeping the young generation; a retry follows.)
    const line = await gw.line((l) => /idle: collected garbage to give memory back/.test(l.msg) && (l.idleRelease as Release).heapAfter < (l.idleRelease as Release).heapBefore, 60_000)
    const r = line.idleRelease as Release
    expect(line.level).toBe('debug')
    expect(typeof line.worker).toBe('number')
    const text = (await metrics())!
    expect(counter(text, 'dbgate_gateway_idle_memory_releases_total')).toBeGreaterThanOrEqual(1)
    expect(counter(text, 'dbgate_gateway_idle_memory_released_bytes_total')).toBeGreaterThan(1024 * 1024)
    expect(counter(text, 'dbgate_gateway_idle_memory_release_pause_seconds_total')).toBeGreaterThan(0)
    expect(r.heapAfter).toBeLessThan(r.heapBefore)
  })
})
