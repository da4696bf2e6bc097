import {copyFile, mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import type pg from 'pg'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {fixture, type Fixture} from '../identity/helpers.js'
import {isolatedEnv, targetConfigText} from '../helpers/open.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {gatewayConfigText, makePki, type TestPki} from './helpers.js'
import {aliceToken, gatewayClient, GatewayProcess} from './process-helpers.js'

/** SIGHUP reloads the policy and the TLS certificate of the running binary without dropping sessions. */
describe('dbgate gateway: SIGHUP reloads', () => {
  let f: Fixture
  let first: TestPki
  let second: TestPki
  let db: UpstreamInfo
  let dir: string
  let gw: GatewayProcess
  let port: number
  let file: string
  let before: pg.Client
  let token: string
  const tls = {cert: '', key: ''}

  const config = (rules: string[], allow = '[engineering]') =>
    gatewayConfigText({
      pki: {...first, cert: tls.cert, key: tls.key},
      dir,
      issuer: f.dev.issuer,
      clientId: f.dev.cliClientId,
      server: ['ops: off'],
      targets: targetConfigText('app', db, [`allow: ${allow}`, ...rules].join('\n')),
    })
  const freeze = ['rules:', '  - id: freeze', '    match: {class: write, command: [insert]}', '    action: deny', '    reason: inserts are frozen for the audit']
  const reloads = () => gw.lines.filter((l) => /^reloaded|^reload failed/.test(l.msg)).length
  const hup = async () => {
    const n = reloads()
    gw.signal('SIGHUP')
    await gw.line(() => reloads() > n)
    return gw.lines.filter((l) => /^reloaded|^reload failed/.test(l.msg)).at(-1)!
  }
  const insert = (c: pg.Client, id: number) => c.query('insert into items values ($1)', [id]).then(() => 'ok', (e: Error) => e.message)

  beforeAll(async () => {
    ;[f, first, second, db] = await Promise.all([fixture(), makePki(), makePki(), createTestDatabase('gwhup')])
    dir = await mkdtemp(path.join(tmpdir(), 'dbgate-gwhup-'))
    await withClient(db.url, (c) => c.query('create table items (id int primary key)'))
    tls.cert = path.join(dir, 'tls.crt')
    tls.key = path.join(dir, 'tls.key')
    await Promise.all([copyFile(first.cert, tls.cert), copyFile(first.key, tls.key)])
    file = path.join(dir, 'gateway.yaml')
    await writeFile(file, config([]))
    gw = new GatewayProcess(file, {...isolatedEnv(), TEST_APP_PASSWORD: db.password}, ['--workers', '1'])
    port = ((await gw.line((l) => /ready to accept/.test(l.msg))).address as {port: number}).port
    token = await aliceToken(f.signingKey, f.dev.issuer, f.dev.cliClientId)
    before = gatewayClient(port, first.ca, token)
    await before.connect()
    expect(await insert(before, 1)).toBe('ok')
  })
  afterAll(async () => {
    await before?.end().catch(() => {})
    gw?.signal('SIGTERM')
    await gw?.exited
    await f?.close()
    await Promise.all([dir, first?.dir, second?.dir].filter(Boolean).map((d) => rm(d!, {recursive: true, force: true})))
  })

  it('gives new connections the new certificate and policy; the open session, whose rules it changed, ends and reconnects under them', async () => {
    let ended: Error | undefined
    before.on('error', (e) => (ended ??= e))
    await Promise.all([copyFile(second.cert, tls.cert), copyFile(second.key, tls.key)])
    await writeFile(file, config(freeze))
    expect((await hup()).msg).toMatch(/^reloaded: TLS certificate and the policy of app/)

    // The session opened before the reload would go on inserting under the rules it started with.
    await gw.line((l) => /ending the session of alice@example\.com on target app: the policy of target "app" changed \(a reload\)/.test(l.msg))
    expect(await insert(before, 2)).not.toBe('ok')
    expect(ended?.message ?? '').toMatch(/this session ends: the policy of target "app" changed \(a reload\); connect again to work under the new one/)

    // A client that trusts only the old CA no longer gets through: the certificate changed.
    const old = gatewayClient(port, first.ca, token)
    old.on('error', () => {})
    expect(await old.connect().then(() => 'connected', (e: Error) => e.message)).toMatch(/self[- ]signed|unable to verify|certificate/i)

    before = gatewayClient(port, second.ca, token)
    await before.connect()
    expect(await insert(before, 3)).toMatch(/inserts are frozen for the audit/)
  })

  it('changes nothing and logs why when the new certificate or YAML is broken', async () => {
    await writeFile(tls.cert, '-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n')
    await writeFile(file, config([]))
    const badCert = await hup()
    expect(badCert).toMatchObject({level: 'error'})
    expect(badCert.msg).toMatch(/^reload failed, nothing changed/)

    await copyFile(second.cert, tls.cert)
    await writeFile(file, `${config([])}  oops: [\n`)
    const badYaml = await hup()
    expect(badYaml).toMatchObject({level: 'error'})
    expect(badYaml.msg).toMatch(/reload failed, nothing changed: .*gateway\.yaml/)

    // Still the reloaded certificate and the freeze: neither failed reload undid or half-applied
    // anything, nor ended the session open under them.
    const c = gatewayClient(port, second.ca, token)
    await c.connect()
    expect(await insert(c, 4)).toMatch(/inserts are frozen for the audit/)
    await c.end()
    expect(await before.query('select 1 as one').then((r) => r.rows[0].one)).toBe(1)
  })

  it('ends the open session of someone the reloaded allow no longer lets in (a --workers process, on SIGHUP)', async () => {
    let ended: Error | undefined
    before.on('error', (e) => (ended ??= e))
    await writeFile(file, config(freeze, '[dba]'))
    expect((await hup()).msg).toMatch(/^reloaded/)
    await gw.line((l) => /ending the session of alice@example\.com on target app: alice@example\.com may no longer use target "app"/.test(l.msg))
    expect(await insert(before, 6)).not.toBe('ok')
    expect(ended?.message ?? '').toMatch(/this session ends: alice@example\.com may no longer use target "app" \(a reload changed its allow\)/)
  })
})
