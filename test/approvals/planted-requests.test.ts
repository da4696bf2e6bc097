/**
 * A planted request must not earn its writer a reviewer's sign-in token.
 *
 * The attack (found in the red-team round of stop 27): someone who can write the bucket's
 * `approvals/` files a request with harmless SQL and a seal key of their own, or copies a genuine
 * request and swaps its seal key. A reviewer who decides it (approve or deny) renews their token and
 * seals it to that key: the writer opens the box and holds a fresh bearer token of the reviewer's.
 *
 * Here: a real gateway (in-process) with a real IdP, alice's real held statement, and bob deciding
 * with the real `dbgate` CLI and a configuration that names only the gateway. Every planted request
 * is refused before a token is renewed or sealed (no decision reaches the bucket), left out of his
 * list with a warning naming it, and the genuine one still goes through.
 */
import {createPrivateKey, X509Certificate} from 'node:crypto'
import {existsSync} from 'node:fs'
import {mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import pg from 'pg'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {generateSealKey} from '../../src/approvals/seal.js'
import {decisionKey, requestKey} from '../../src/approvals/store.js'
import type {ApprovalRequest} from '../../src/approvals/types.js'
import {signRequest} from '../../src/approvals/gateway-signature.js'
import {reviewContextFrom} from '../../src/approvals/cli.js'
import {loadConfig} from '../../src/config/load.js'
import {reviewSource} from '../../src/tui/approvals/run.js'
import {startGateway, type RunningGateway} from '../../src/gateway/gateway.js'
import {createCertificateAuthority, issueServerCertificate} from '../../src/util/tls-certs.js'
import {isolatedEnv, targetConfigText} from '../helpers/open.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {run} from '../helpers/run.js'
import {mint} from '../identity/helpers.js'
import {gatewayConfig, makePki, type TestPki} from '../gateway/helpers.js'
import {people, watchNotices, type People} from './helpers.js'

const BIN = path.resolve('bin/run.js')

describe('a reviewer whose configuration names a gateway, facing planted requests', () => {
  let p: People
  let pki: TestPki
  let db: UpstreamInfo
  let gw: RunningGateway
  let dir: string
  let bucketDir: string
  let bobConfig: string
  let alice: pg.Client
  let held: Promise<pg.QueryResult>
  let genuine: ApprovalRequest
  const planted = new Map<string, string>()

  const bob = (args: string[]) =>
    run(process.execPath, [BIN, ...args, '--config', bobConfig], {env: {...isolatedEnv(), ...p.env('bob'), DBGATE_TOKEN: '', NO_COLOR: '1'}, timeoutMs: 60_000})
  const file = (key: string) => path.join(bucketDir, key)
  const extra: pg.Client[] = []
  /** Another session of alice's, straight to the gateway with a token minted for her. */
  const aliceClient = async () => {
    const token = await mint(p.f.signingKey, {iss: p.f.dev.issuer, aud: p.f.dev.cliClientId, sub: 'alice', email: 'alice@example.com', groups: ['engineering'], exp: Math.floor(Date.now() / 1000) + 3600})
    const c = new pg.Client({host: '127.0.0.1', port: gw.address.port, database: 'app', user: 'alice@example.com', password: token, ssl: {ca: await readFile(pki.ca, 'utf8'), servername: 'localhost'}})
    await c.connect()
    extra.push(c)
    return c
  }
  const plant = async (what: string, request: ApprovalRequest) => {
    planted.set(request.id, what)
    await writeFile(file(requestKey(request.id)), JSON.stringify(request))
  }

  beforeAll(async () => {
    ;[p, pki, db] = await Promise.all([people(), makePki(), createTestDatabase('planted')])
    dir = await mkdtemp(path.join(tmpdir(), 'dbgate-planted-'))
    bucketDir = path.join(dir, 'bucket')
    const gwEnv = {...isolatedEnv(), TEST_APP_PASSWORD: db.password}
    gw = await startGateway({
      loaded: gatewayConfig({pki, dir, issuer: p.f.dev.issuer, clientId: p.f.dev.cliClientId, env: gwEnv, targets: targetConfigText('app', db, ['allow: [engineering]', 'reviewers: [dba]', 'approvals:', '  expiry: 15m'].join('\n'))}),
      env: gwEnv,
    })
    bobConfig = path.join(dir, 'bob.yaml')
    await writeFile(
      bobConfig,
      ['identity:', `  issuer: ${p.f.dev.issuer}`, `  clientId: ${p.f.dev.cliClientId}`, 'gateway:', `  address: 127.0.0.1:${gw.address.port}`, `  ca: ${pki.ca}`, `  api: 127.0.0.1:${gw.api!.port}`, `bucket: file://${bucketDir}`, ''].join('\n'),
    )
    await p.login('bob')

    // alice's real statement, held by the gateway.
    const token = await mint(p.f.signingKey, {iss: p.f.dev.issuer, aud: p.f.dev.cliClientId, sub: 'alice', email: 'alice@example.com', groups: ['engineering'], exp: Math.floor(Date.now() / 1000) + 3600})
    alice = new pg.Client({host: '127.0.0.1', port: gw.address.port, database: 'app', user: 'alice@example.com', password: token, ssl: {ca: await readFile(pki.ca, 'utf8'), servername: 'localhost'}})
    await alice.connect()
    const w = watchNotices(alice)
    held = alice.query('create table approved_genuine (id int)')
    genuine = JSON.parse(await readFile(file(requestKey(await w.approvalId())), 'utf8')) as ApprovalRequest

    // What a bucket writer can file. Each shows harmless SQL from carol, so a reviewer would think nothing of it.
    const theirs = generateSealKey().publicKey
    const bait = {...genuine, sql: 'select 1', statements: [{text: 'select 1', class: 'read', command: 'SELECT', action: 'require_approval', ruleId: genuine.ruleId}], requester: {...genuine.requester, subject: 'carol', email: 'carol@example.com', groups: ['engineering']}, sealKey: theirs}
    const {gatewaySignature: _none, ...unsigned} = bait
    // Another certificate, from another CA (what a planter can make), and one from the gateway's own CA would be no better.
    const planterCa = createCertificateAuthority('planter ca')
    const planterPair = issueServerCertificate(planterCa, ['127.0.0.1'])
    const planterTls = {key: createPrivateKey(planterPair.key), cert: new X509Certificate(planterPair.cert)}
    await plant('no gateway signature', {...unsigned, id: 'apr-plantednone'})
    await plant("a genuine request's signature, on another id with the seal key swapped", {...bait, id: genuine.id.replace(/^apr-/, 'apr-x'), gatewaySignature: genuine.gatewaySignature})
    await plant('signed by a certificate of its own', {...unsigned, id: 'apr-plantedself', gatewaySignature: signRequest(planterTls, {...unsigned, id: 'apr-plantedself'})})
    // What the request names as its certificate is the planter's text, printed where the reviewer reads the refusal.
    await plant('naming its certificate with terminal sequences that would erase the warning', {...unsigned, id: 'apr-plantedesc', gatewaySignature: {...signRequest(planterTls, {...unsigned, id: 'apr-plantedesc'}), cert: '\x1b[2K\x1b[1A\r\x1b]8;;x\x07'}})
    await plant("signed by its own key, naming the gateway's certificate", {...unsigned, id: 'apr-plantedname', gatewaySignature: {...signRequest(planterTls, {...unsigned, id: 'apr-plantedname'}), cert: genuine.gatewaySignature!.cert}})
  }, 120_000)
  afterAll(async () => {
    await alice?.end().catch(() => {})
    for (const c of extra) await c.end().catch(() => {})
    await gw?.close(500)
    await p?.close()
    await Promise.all([dir, pki?.dir].filter(Boolean).map((d) => rm(d!, {recursive: true, force: true})))
  })

  it('has the gateway sign the genuine request', () => {
    expect(genuine.gatewaySignature).toMatchObject({alg: 'tls-certificate-key', cert: expect.stringMatching(/^[0-9a-f]{64}$/)})
  })

  it('lists only what the gateway filed, and names each planted request in a warning', async () => {
    const r = await bob(['approvals', 'list'])
    expect(r.code).toBe(0)
    expect(r.stdout).toContain(genuine.id)
    for (const id of planted.keys()) {
      expect(r.stdout, planted.get(id)).not.toContain(id)
      expect(r.stderr, planted.get(id)).toMatch(new RegExp(`${id} \\(requester: carol@example\\.com\\) left out: your gateway did not file it`))
    }
    // A planted request's text reaches the reviewer's terminal only as visible escapes.
    expect(r.stderr).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f]/)
  })

  it('refuses to approve or deny a planted request, before anything is sealed, and says what it is', async () => {
    for (const [id, what] of planted) {
      for (const args of [['approve', id], ['deny', id, '--reason', 'not mine']]) {
        const r = await bob(args)
        expect(r.code, `${args[0]} ${what}`).toBe(1)
        expect(r.stderr, what).toMatch(new RegExp(`${id} was not filed by your gateway 127\\.0\\.0\\.1:\\d+`))
        expect(r.stderr, what).toMatch(/so nothing was sent/)
        expect(r.stderr, what).toMatch(/APPROVAL_UNTRUSTED_REQUEST/)
        expect(r.stderr, what).toMatch(/security team/)
        expect(r.stderr, what).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f]/)
      }
      // Nothing in the bucket for its writer to open.
      expect(existsSync(file(decisionKey(id))), what).toBe(false)
    }
  })

  it('leaves them out of the interactive view too, telling each once however often it reloads, and refuses them there', async () => {
    const warnings: string[] = []
    const ctx = await reviewContextFrom(await loadConfig({configPath: bobConfig}), {...isolatedEnv(), ...p.env('bob'), DBGATE_TOKEN: ''}, (m) => warnings.push(m), 'decide')
    const source = reviewSource(ctx, warnings)
    for (let i = 0; i < 3; i++) expect((await source.load()).map((v) => v.request.id)).toEqual([genuine.id])
    const told = source.takeWarnings!()
    for (const id of planted.keys()) expect(told.filter((w) => w.startsWith(`${id} `)), planted.get(id)).toHaveLength(1)
    for (const id of planted.keys()) await expect(source.decide({id, action: 'approve'}), planted.get(id)).rejects.toThrow(/was not filed by your gateway .* nothing was sent/)
    for (const id of planted.keys()) expect(existsSync(file(decisionKey(id))), planted.get(id)).toBe(false)
  })

  it('refuses a request stored under another id: a bucket writer copies a pending genuine request over the one the reviewer read', async () => {
    // Found in the red-team round of the gateway signature: the signature covers the id inside the
    // record, not the name it is stored under, and `approve <id>` decided whatever that file held.
    // alice (who can write approvals/) asks for something harmless, and for something that is not.
    await withClient(db.url, (q) => q.query('create table precious (id int)'))
    const harmless = await aliceClient()
    const wh = watchNotices(harmless)
    void harmless.query('create table harmless_one (id int)').catch(() => {})
    const shown = await wh.approvalId()
    const harmful = await aliceClient()
    const wd = watchNotices(harmful)
    void harmful.query('alter table precious rename to gone').catch(() => {})
    const hidden = await wd.approvalId()
    const hiddenText = await readFile(file(requestKey(hidden)), 'utf8')
    // The reviewer reads the harmless one (CLI list and interactive view) ...
    expect((await bob(['approvals', 'list'])).stdout).toMatch(new RegExp(`${shown}.*create table harmless_one`))
    const warnings: string[] = []
    const ctx = await reviewContextFrom(await loadConfig({configPath: bobConfig}), {...isolatedEnv(), ...p.env('bob'), DBGATE_TOKEN: ''}, (m) => warnings.push(m), 'decide')
    const source = reviewSource(ctx, warnings)
    expect((await source.load()).map((v) => v.request.id)).toContain(shown)
    // ... then the genuine harmful request is copied over it, and over a name no gateway filed.
    const swaps = [shown, 'apr-swappednew']
    for (const id of swaps) await writeFile(file(requestKey(id)), hiddenText)

    for (const id of swaps) {
      for (const args of [['approve', id, '--reason', 'harmless'], ['deny', id, '--reason', 'not now'], ['approve', id, '--json']]) {
        const r = await bob(args)
        const what = `${args.join(' ')} holding ${hidden}`
        expect(r.code, what).toBe(1)
        expect(r.stdout + r.stderr, what).toMatch(new RegExp(`${id} holds another request \\(${hidden}\\), so it was not decided`))
        expect(r.stdout + r.stderr, what).toMatch(/APPROVAL_UNTRUSTED_REQUEST/)
      }
      await expect(source.decide({id, action: 'approve'}), id).rejects.toThrow(new RegExp(`${id} holds another request \\(${hidden}\\)`))
    }
    // The list leaves the copies out and says so; the harmful request stays listed under its own id.
    const listed = await bob(['approvals', 'list'])
    expect(listed.stdout).toContain(hidden)
    for (const id of swaps) {
      expect(listed.stdout).not.toContain(id)
      expect(listed.stderr).toContain(`approval request approvals/requests/${id}.json holds another request (${hidden})`)
    }
    // Nothing was decided: no decision anywhere, and the table is still there.
    for (const id of [...swaps, hidden]) expect(existsSync(file(decisionKey(id))), id).toBe(false)
    expect(await withClient(db.url, async (q) => (await q.query("select to_regclass('precious') is not null as ok")).rows[0].ok)).toBe(true)
  }, 120_000)

  it('leaves what it did not file out of the history (--all) and out of your own requests (--mine) too', async () => {
    const {gatewaySignature: _s, ...unsigned} = genuine
    const hourAgo = Date.now() - 3_600_000
    // A settled request is history: an expired one nobody decided, and one in bob's own name.
    const old = {...unsigned, id: 'apr-plantedold', sql: 'drop table audit_trail', createdAt: new Date(hourAgo - 60_000).toISOString(), expiresAt: new Date(hourAgo).toISOString()}
    const bobs = {...unsigned, id: 'apr-plantedbob', requester: {...genuine.requester, subject: 'bob', email: 'bob@example.com', groups: ['dba']}}
    for (const r of [old, bobs]) await writeFile(file(requestKey(r.id)), JSON.stringify(r))
    try {
      const all = await bob(['approvals', 'list', '--all'])
      expect(all.code).toBe(0)
      expect(all.stdout).toContain(genuine.id)
      expect(all.stdout).not.toContain(old.id)
      expect(all.stderr).toMatch(new RegExp(`${old.id} \\(requester: alice@example\\.com\\) left out: your gateway did not file it`))
      for (const args of [['--mine'], ['--mine', '--all']]) {
        const mine = await bob(['approvals', 'list', ...args])
        expect(mine.stdout, args.join(' ')).not.toContain(bobs.id)
        expect(mine.stderr, args.join(' ')).toMatch(new RegExp(`${bobs.id} \\(requester: bob@example\\.com\\) left out: your gateway did not file it`))
      }
    } finally {
      for (const r of [old, bobs]) await rm(file(requestKey(r.id)), {force: true})
    }
  })

  it('still approves the genuine request, and alice\'s statement runs', async () => {
    const r = await bob(['approve', genuine.id, '--reason', 'ticket OPS-7'])
    expect(r.stderr).not.toMatch(/error/i)
    expect(r.stdout).toMatch(new RegExp(`Approved ${genuine.id} \\(alice@example\\.com on app\\)`))
    expect((await held).command).toBe('CREATE')
    expect(await withClient(db.url, async (q) => (await q.query("select to_regclass('approved_genuine') is not null as ok")).rows[0].ok)).toBe(true)
  })
})
