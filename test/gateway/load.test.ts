/**
 * [load] 1,000 concurrent sessions over two gateway replicas, with nothing lost. Run alone with
 * `npx vitest run test/gateway/load.test.ts` (or `-t '\[load\]'`). Bounded: 1,000 clients, a few
 * statements each, upstream sessions capped per replica (the rest queue in the gateway).
 */
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import type pg from 'pg'
import {untilProbe} from '../helpers/wait.js'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {parseEventLine, type StatementData} from '../../src/audit/events.js'
import {SessionReader} from '../../src/audit/read.js'
import {loadKeyRing} from '../../src/audit/signing.js'
import {signerTrust} from '../../src/audit/trust.js'
import {verifySession} from '../../src/audit/verify.js'
import {TestS3} from '../audit/s3rver.js'
import {isolatedEnv, targetConfigText} from '../helpers/open.js'
import {createTestDatabase, type UpstreamInfo} from '../helpers/pg.js'
import {fixture, mint, type Fixture} from '../identity/helpers.js'
import {makePki, type TestPki} from './helpers.js'
import {replicaClient, S3_ENV, spooledLogs, startReplica, writeReplicaConfig, type GatewayProcess} from './process-helpers.js'

const CLIENTS = 1000
const STATEMENTS = 3
const IDENTITIES = 20
/** TLS handshakes in flight at once on the client side (setup only; sessions stay open). */
const SETUP_CONCURRENCY = 100
/** Upstream sessions per replica; the suite's PostgreSQL is shared (max_connections 400). */
const UPSTREAM_PER_REPLICA = 40

/** A counting semaphore: at most `n` holders. */
function limiter(n: number): () => Promise<() => void> {
  let free = n
  const queue: (() => void)[] = []
  const release = () => {
    const next = queue.shift()
    if (next) next()
    else free++
  }
  return () =>
    new Promise((resolve) => {
      if (free > 0) {
        free--
        resolve(release)
      } else queue.push(() => resolve(release))
    })
}

const until = <T>(probe: () => Promise<T | undefined>, timeoutMs = 120_000): Promise<T> => untilProbe(probe, 'the probe answers', {timeoutMs, intervalMs: 500})

describe('[load] dbgate gateway: 1,000 concurrent sessions over two replicas', () => {
  let f: Fixture
  let pki: TestPki
  let db: UpstreamInfo
  let s3: TestS3
  let dir: string
  const gws: GatewayProcess[] = []
  const dirs: string[] = []

  beforeAll(async () => {
    ;[f, pki, db, s3] = await Promise.all([fixture(), makePki(), createTestDatabase('gwload'), TestS3.start()])
    dir = await mkdtemp(path.join(tmpdir(), 'dbgate-gwload-'))
    const env = {...isolatedEnv(), ...S3_ENV, TEST_APP_PASSWORD: db.password}
    for (const name of ['a', 'b']) {
      const rdir = path.join(dir, name)
      dirs.push(rdir)
      const config = await writeReplicaConfig({
        dir: rdir,
        pki,
        s3,
        issuer: f.dev.issuer,
        clientId: f.dev.cliClientId,
        targets: targetConfigText('app', db, 'allow: [engineering]'),
        // One load generator on one address, 50 sessions per identity: above the caps meant for people.
        server: ['pipelineIdle: 30s', `maxSessionsPerPerson: ${CLIENTS / IDENTITIES}`, `maxPendingSignIns: ${CLIENTS}`, `maxPendingSignInsPerAddress: ${CLIENTS}`],
        // Clients past the upstream cap wait in the gateway's queue, signed in, for the whole run.
        top: ['tunnel:', `  maxUpstreamSessions: ${UPSTREAM_PER_REPLICA}`, '  upstreamQueueTimeout: 5m', '  authTimeout: 5m'],
      })
      gws.push(await startReplica(config, env))
    }
  })
  afterAll(async () => {
    await Promise.all(gws.map((g) => g.stop()))
    await f?.close()
    await s3?.dispose()
    await Promise.all([dir, pki?.dir].filter(Boolean).map((d) => rm(d!, {recursive: true, force: true})))
  })

  it('serves 1,000 clients open at once, records every statement exactly once, and every session verifies', {timeout: 300_000}, async () => {
    const tokens = await Promise.all(
      Array.from({length: IDENTITIES}, (_, u) =>
        mint(f.signingKey, {iss: f.dev.issuer, aud: f.dev.cliClientId, sub: `load-${u}`, email: `load${u}@example.com`, groups: ['engineering'], exp: Math.floor(Date.now() / 1000) + 3600}),
      ),
    )
    const setup = limiter(SETUP_CONCURRENCY)
    let open = 0
    let peak = 0
    let opened = 0
    let allOpen!: () => void
    const everyoneOpen = new Promise<void>((resolve) => (allOpen = resolve))
    const errors: string[] = []

    const session = async (i: number) => {
      const u = i % IDENTITIES
      const c = replicaClient(gws[i % 2]!.port, pki, `load${u}@example.com`, tokens[u]!)
      const conn = (c as unknown as {connection: {once(event: 'sslconnect', f: () => void): void}}).connection
      const release = await setup()
      conn.once('sslconnect', () => {
        release()
        open++
        peak = Math.max(peak, open)
        if (++opened === CLIENTS) allOpen()
      })
      c.on('error', (e) => errors.push(`client ${i}: ${e.message}`))
      try {
        await c.connect()
        for (let k = 0; k < STATEMENTS; k++) {
          const tag = `L${i}-${k}`
          const r = await c.query(`select '${tag}' as tag`)
          if (r.rows[0]?.tag !== tag) errors.push(`client ${i}: got ${JSON.stringify(r.rows)} for ${tag}`)
        }
        // Nobody leaves before all 1,000 are open: the peak is every client at once.
        await everyoneOpen
      } catch (e) {
        errors.push(`client ${i}: ${(e as Error).message}`)
        allOpen() // a failed client must not hold the others forever; the assertions below fail.
      } finally {
        await (c as pg.Client).end().catch(() => {})
        open--
      }
    }
    await Promise.all(Array.from({length: CLIENTS}, (_, i) => session(i)))
    expect(errors).toEqual([])
    expect(peak).toBe(CLIENTS)

    // Everything reaches the bucket, and the spools empty.
    for (const d of dirs) await until(async () => ((await spooledLogs(d)).length === 0 ? true : undefined))
    const bucket = s3.bucket('dbgate')
    const reader = new SessionReader(bucket, path.join(dir, 'reader-cache'))
    const sessions = await until(async () => {
      const all = await reader.list()
      return all.length === CLIENTS && all.every((s) => s.status === 'ended') ? all : undefined
    })
    const {keys} = await loadKeyRing(bucket)
    const [a, b] = gws as [GatewayProcess, GatewayProcess]
    const both = signerTrust([a.keyId, b.keyId], undefined)
    const onlyA = signerTrust([a.keyId], undefined)
    const seen = new Map<string, number>()
    let fromA = 0
    let fromB = 0
    for (const s of sessions) {
      const {text} = await reader.loadSummary(s)
      const checked = verifySession(text, keys, {trust: both})
      expect(checked, s.sessionId).toMatchObject({ok: true, status: 'ended'})
      if (verifySession(text, keys, {trust: onlyA}).ok) fromA++
      else fromB++
      for (const line of text.split('\n')) {
        if (!line) continue
        const ev = parseEventLine(line)
        if (ev.type !== 'statement') continue
        const tag = /'(L\d+-\d+)'/.exec((ev.data as StatementData).sql)?.[1]
        if (tag) seen.set(tag, (seen.get(tag) ?? 0) + 1)
      }
    }
    // Every statement recorded, and exactly once.
    expect(seen.size).toBe(CLIENTS * STATEMENTS)
    expect([...seen.values()].every((n) => n === 1)).toBe(true)
    // Both replicas served half.
    expect([fromA, fromB]).toEqual([CLIENTS / 2, CLIENTS / 2])
  })
})
