import {readFileSync} from 'node:fs'
import {mkdtemp} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import pg from 'pg'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {SessionReader} from '../../src/audit/read.js'
import {openBucket} from '../../src/bucket/index.js'
import type {LoadedConfig} from '../../src/config/types.js'
import {startGateway, type RunningGateway} from '../../src/gateway/gateway.js'
import {tokenHash} from '../../src/identity/verify.js'
import {fixture, mint, type Fixture} from '../identity/helpers.js'
import {isolatedEnv, targetConfigText} from '../helpers/open.js'
import {createTestDatabase, type UpstreamInfo} from '../helpers/pg.js'
import {gatewayConfig, makePki, type TestPki, closeGatewayTest} from './helpers.js'

/**
 * Every session's recording names the token that signed it in (its hash, jti and expiry). A person's
 * sessions share one pipeline on the gateway; a session that reused the pipeline another token built
 * was recorded with that other token, so the sessions opened with a leaked token could not be found
 * by its hash: they read as the legitimate token's.
 */
describe('dbgate gateway: each session records the token it signed in with', () => {
  let f: Fixture
  let pki: TestPki
  let db: UpstreamInfo
  let dir: string
  let gw: RunningGateway | undefined
  let loaded: LoadedConfig
  const email = 'alice@example.com'

  beforeAll(async () => {
    ;[f, pki, db] = await Promise.all([fixture(), makePki(), createTestDatabase('gwtokev')])
    dir = await mkdtemp(path.join(tmpdir(), 'dbgate-gwtokev-'))
    const env = {...isolatedEnv(), TEST_APP_PASSWORD: db.password}
    loaded = gatewayConfig({pki, dir, issuer: f.dev.issuer, clientId: f.dev.cliClientId, env, server: ['pipelineIdle: 30s'], targets: targetConfigText('app', db, 'allow: [engineering]')})
    gw = await startGateway({loaded, env})
    await gw.whenReady()
  })
  afterAll(() => closeGatewayTest(gw, f, [dir, pki?.dir]))

  it('records the hash, jti and expiry of each session\'s own token, though the sessions share a pipeline', async () => {
    const now = Math.floor(Date.now() / 1000)
    // The legitimate one, then a leaked one (another jti, another expiry), at once and one after the other.
    const tokens = await Promise.all(
      [
        {jti: 'legit-1', exp: now + 3600},
        {jti: 'leaked-2', exp: now + 1800},
        {jti: 'leaked-3', exp: now + 900},
      ].map((c) => mint(f.signingKey, {iss: f.dev.issuer, aud: f.dev.cliClientId, sub: 'alice', email, groups: ['engineering'], ...c})),
    )
    const clients: pg.Client[] = []
    for (const [i, token] of tokens.entries()) {
      const c = new pg.Client({host: '127.0.0.1', port: gw!.address.port, database: 'app', user: email, password: token, ssl: {ca: readFileSync(pki.ca, 'utf8'), servername: 'localhost'}})
      await c.connect()
      await c.query(`select ${i + 1} as marker_${i + 1}`)
      clients.push(c)
      // The last one starts after the first has ended: the pipeline is still alive (pipelineIdle).
      if (i === 1) await clients.shift()!.end()
    }
    expect(gw!.pipelineCount).toBe(1)
    await Promise.all(clients.map((c) => c.end()))
    await gw!.drain(2000)
    gw = undefined

    const reader = new SessionReader(openBucket(loaded.config.bucket))
    const recorded: Record<string, {tokenHash: string; tokenId?: string; expiresAt: string}> = {}
    for (const s of await reader.list()) {
      const {text, events} = await reader.loadSummary(s)
      const marker = /marker_(\d)/.exec(text)?.[1]
      const start = events.find((e) => e.type === 'session.start')!.data as {identity: {tokenHash: string; tokenId?: string; expiresAt: string}}
      if (marker) recorded[marker] = start.identity
    }
    expect(Object.keys(recorded).sort()).toEqual(['1', '2', '3'])
    for (const [i, token] of tokens.entries()) {
      const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as {jti: string; exp: number}
      expect(recorded[String(i + 1)], `session ${i + 1}`).toMatchObject({tokenHash: tokenHash(token), tokenId: claims.jti, expiresAt: new Date(claims.exp * 1000).toISOString()})
    }
  }, 60_000)
})
