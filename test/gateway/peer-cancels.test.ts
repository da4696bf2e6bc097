import {mkdtemp, rm} from 'node:fs/promises'
import net from 'node:net'
import {tmpdir} from 'node:os'
import path from 'node:path'
import type pg from 'pg'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {people, watchNotices, type People} from '../approvals/helpers.js'
import {TestS3} from '../audit/s3rver.js'
import {isolatedEnv, targetConfigText} from '../helpers/open.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {mint} from '../identity/helpers.js'
import {makePki, type TestPki} from './helpers.js'
import {GatewayProcess, replicaClient, S3_ENV, until, writeReplicaConfig, type LogLine, sendCancel} from './process-helpers.js'

const TARGET = ['allow: [engineering]', 'reviewers: [dba]', 'approvals:', '  expiry: 15m'].join('\n')

/** A port free now, for a replica whose peers must know it before it starts. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once('error', reject)
    s.listen({host: '127.0.0.1', port: 0}, () => {
      const {port} = s.address() as net.AddressInfo
      s.close(() => resolve(port))
    })
  })
}

/** A third peer that only listens: what a replica passes on, byte for byte. */
async function listeningPeer(): Promise<{port: number; packets: {code: number; processId: number; secretKey: number}[]; close(): Promise<void>}> {
  const packets: {code: number; processId: number; secretKey: number}[] = []
  const server = net.createServer((s) => {
    let got = Buffer.alloc(0)
    s.on('data', (d: Buffer) => (got = Buffer.concat([got, d])))
    s.on('end', () => {
      for (let at = 0; at + 16 <= got.length; at += 16) packets.push({code: got.readInt32BE(at + 4), processId: got.readInt32BE(at + 8), secretKey: got.readInt32BE(at + 12)})
      s.end()
    })
  })
  await new Promise<void>((resolve) => server.listen({host: '127.0.0.1', port: 0}, resolve))
  return {port: (server.address() as net.AddressInfo).port, packets, close: () => new Promise((resolve) => server.close(() => resolve()))}
}

const PEER_CANCEL_REQUEST = (1234 << 16) | 9876

const keyOf = (c: pg.Client) => c as unknown as {processID: number; secretKey: number}

/**
 * Two replicas behind a balancer that does not keep a client's connections together: a Ctrl-C
 * (a CancelRequest on a new connection) lands on the replica that does not hold the session. With
 * `server.peers` it is passed on. Replica A runs two workers, so a key passed on reaches the
 * worker that issued it through the primary.
 */
describe('dbgate gateway: cancel requests across replicas (server.peers)', () => {
  let p: People
  let pki: TestPki
  let db: UpstreamInfo
  let s3: TestS3
  let dir: string
  const gw: Record<'a' | 'b', GatewayProcess | undefined> = {a: undefined, b: undefined}
  const ports = {a: 0, b: 0}
  let watcher: Awaited<ReturnType<typeof listeningPeer>>
  const clients: pg.Client[] = []
  const email = 'alice@example.com'

  async function connect(which: 'a' | 'b'): Promise<pg.Client> {
    const token = await mint(p.f.signingKey, {iss: p.f.dev.issuer, aud: p.f.dev.cliClientId, sub: 'alice', email, groups: ['engineering'], exp: Math.floor(Date.now() / 1000) + 3600})
    const c = replicaClient(ports[which], pki, email, token)
    clients.push(c)
    await c.connect()
    return c
  }
  const sleeping = (marker: string) =>
    until(async () => {
      const n = await withClient(db.url, async (q) => (await q.query("select count(*)::int as n from pg_stat_activity where datname = current_database() and state = 'active' and query like $1", [`%${marker}%`])).rows[0].n)
      return n === 1 ? true : undefined
    }, 30_000)

  beforeAll(async () => {
    ;[p, pki, db, s3] = await Promise.all([people(), makePki(), createTestDatabase('gwpeers'), TestS3.start()])
    dir = await mkdtemp(path.join(tmpdir(), 'dbgate-gwpeers-'))
    ;[ports.a, ports.b] = [await freePort(), await freePort()]
    watcher = await listeningPeer()
    const env = {...isolatedEnv(), ...S3_ENV, TEST_APP_PASSWORD: db.password}
    // Each lists both, itself included, as a headless Service's name would resolve, and the watcher.
    const peers = `peers: [127.0.0.1:${ports.a}, 127.0.0.1:${ports.b}, localhost:${watcher.port}]`
    const config = (which: 'a' | 'b') =>
      writeReplicaConfig({dir: path.join(dir, which), listen: `127.0.0.1:${ports[which]}`, pki, s3, issuer: p.f.dev.issuer, clientId: p.f.dev.cliClientId, targets: targetConfigText('app', db, TARGET), server: [peers]})
    const [ca, cb] = await Promise.all([config('a'), config('b')])
    gw.a = new GatewayProcess(ca, env, ['--workers', '2'])
    gw.b = new GatewayProcess(cb, env, ['--workers', '1'])
    await Promise.all([gw.a.started(), gw.b.started()])
  })
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.end().catch(() => {})))
    await Promise.all([gw.a?.stop(), gw.b?.stop()])
    await p?.close()
    await s3?.dispose()
    await watcher?.close()
    await Promise.all([dir, pki?.dir].filter(Boolean).map((d) => rm(d!, {recursive: true, force: true})))
  })

  it.each([
    ['A', 'B'],
    ['B', 'A'],
  ] as const)('cancels a statement running through replica %s when the CancelRequest reaches replica %s', async (holder, other) => {
    const [h, o] = [holder.toLowerCase() as 'a' | 'b', other.toLowerCase() as 'a' | 'b']
    const c = await connect(h)
    const marker = `peer_cancel_${h}`
    const sleep = c.query(`select pg_sleep(60) as ${marker}`).then(() => 'finished', (e: Error & {code?: string}) => e.code)
    await sleeping(marker)
    const before = watcher.packets.length
    await sendCancel(ports[o], keyOf(c).processID, keyOf(c).secretKey)
    expect(await sleep).toBe('57014')
    // The replica that did not hold it passed it on to every peer, the watcher included, as a peer's request.
    await until(async () => (watcher.packets.length > before ? true : undefined))
    expect(watcher.packets.slice(before)).toEqual([{code: PEER_CANCEL_REQUEST, ...keyOf(c)}].map(({code, processID, secretKey}) => ({code, processId: processID, secretKey})))
    expect(gw[o]!.lines.some((l: LogLine) => /with a key no session here holds: passed on to the peers \(server\.peers\)/.test(l.msg))).toBe(true)
    // The session goes on.
    expect((await c.query('select 1 as one')).rows).toEqual([{one: 1}])
  })

  it('withdraws a statement waiting for a reviewer on replica A when the Ctrl-C reaches replica B', async () => {
    const c = await connect('a')
    const w = watchNotices(c)
    const held = c.query('create table never_approved (id int)').then(() => 'ran', (e: Error & {code?: string}) => e.code)
    await w.approvalId()
    await sendCancel(ports.b, keyOf(c).processID, keyOf(c).secretKey)
    expect(await held).toBe('57014')
    const exists = await withClient(db.url, async (q) => (await q.query("select to_regclass('never_approved') is not null as ok")).rows[0].ok)
    expect(exists).toBe(false)
  })

  it('passes a key no replica issued on once: no statement is cancelled and the peers do not pass it on again', async () => {
    const c = await connect('a')
    const sleep = c.query('select pg_sleep(3) as peer_wrong_key').then(() => 'finished', (e: Error & {code?: string}) => e.code)
    await sleeping('peer_wrong_key')
    const before = watcher.packets.length
    await sendCancel(ports.b, keyOf(c).processID, keyOf(c).secretKey ^ 1)
    await sendCancel(ports.b, keyOf(c).processID ^ 0x100, keyOf(c).secretKey)
    expect(await sleep).toBe('finished')
    // B passed each on once. A and B itself received them as a peer's and did not pass them on
    // again: each would have sent the watcher another copy, over and over in a loop.
    const passed = watcher.packets.slice(before).map((x) => `${x.processId}/${x.secretKey}`)
    expect(passed.sort()).toEqual([`${keyOf(c).processID}/${keyOf(c).secretKey ^ 1}`, `${keyOf(c).processID ^ 0x100}/${keyOf(c).secretKey}`].sort())
  })
})
