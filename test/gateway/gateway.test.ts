import https from 'node:https'
import net from 'node:net'
import {readFileSync} from 'node:fs'
import {mkdtemp, readFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {gunzipSync} from 'node:zlib'
import {decodeJwt} from 'jose'
import pg from 'pg'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {loadKeyRing} from '../../src/audit/signing.js'
import {verifySession} from '../../src/audit/verify.js'
import {signerTrust} from '../../src/audit/trust.js'
import {openBucket} from '../../src/bucket/index.js'
import {startGateway, type RunningGateway} from '../../src/gateway/gateway.js'
import type {GatewayObserver, SignInFailure, StatementDecision} from '../../src/gateway/observer.js'
import {getIdentity} from '../../src/identity/session.js'
import {decodeNotice} from '../../src/wire/backend.js'
import {encodeSslRequest, encodeStartup} from '../../src/wire/frontend.js'
import {fixture, loginAs, mint, type Fixture} from '../identity/helpers.js'
import {isolatedEnv, targetConfigText} from '../helpers/open.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {run} from '../helpers/run.js'
import {directTls, gatewayConfig, makePki, readUntilClosed, type TestPki, closeGatewayTest} from './helpers.js'
import {waitFor} from '../helpers/wait.js'

class RecordingObserver implements GatewayObserver {
  failures: SignInFailure[] = []
  opened: string[] = []
  closed: string[] = []
  statements: [string, StatementDecision][] = []
  masked = 0
  signInFailed(reason: SignInFailure) {
    this.failures.push(reason)
  }
  sessionOpened(target: string) {
    this.opened.push(target)
  }
  sessionClosed(target: string) {
    this.closed.push(target)
  }
  statement(target: string, decision: StatementDecision) {
    this.statements.push([target, decision])
  }
  valuesMasked(_target: string, count: number) {
    this.masked += count
  }
}

/** A password message (the token), as libpq sends it after AuthenticationCleartextPassword. */
function passwordMessage(password: string): Buffer {
  const body = Buffer.concat([Buffer.from(password), Buffer.from([0])])
  const head = Buffer.alloc(5)
  head.write('p', 0)
  head.writeInt32BE(body.length + 4, 1)
  return Buffer.concat([head, body])
}

/** The ErrorResponse fields in what the server sent before closing. */
function errorIn(bytes: Buffer): Record<string, string> | undefined {
  const i = bytes.indexOf(0x45) // E
  if (i < 0) return undefined
  const len = bytes.readInt32BE(i + 1)
  return decodeNotice(bytes.subarray(i + 5, i + 1 + len)) as unknown as Record<string, string>
}

/** The gateway end to end: a real IdP, real PostgreSQL, psql and node-postgres over TLS with a token. */
describe('dbgate gateway', () => {
  let f: Fixture
  let pki: TestPki
  let db: UpstreamInfo
  let gw: RunningGateway
  let dir: string
  let aliceToken: string
  const observer = new RecordingObserver()
  const email = 'alice@example.com'

  beforeAll(async () => {
    ;[f, pki, db] = await Promise.all([fixture(), makePki(), createTestDatabase('gw')])
    dir = await mkdtemp(path.join(tmpdir(), 'dbgate-gw-'))
    await withClient(db.url, (c) => c.query("create table customers (id int primary key, email text, plan text); insert into customers values (1, 'first.buyer@example.org', 'pro'), (2, 'second.buyer@example.org', 'free')"))
    const env = {...isolatedEnv(), TEST_APP_PASSWORD: db.password}
    const loaded = gatewayConfig({
      pki,
      dir,
      issuer: f.dev.issuer,
      clientId: f.dev.cliClientId,
      env,
      targets: [...targetConfigText('app', db, 'allow: [engineering]'), ...targetConfigText('down', db, 'port: 1\nallow: [engineering]'), ...targetConfigText('dba_only', db, 'allow: [dba, sre]')],
    })
    gw = await startGateway({loaded, env, observer})
    await loginAs(f, {user: 'alice'})
    aliceToken = (await getIdentity(f.config, {env: f.env, store: f.store})).token
  })
  afterAll(() => closeGatewayTest(gw, f, [dir, pki?.dir]))

  const client = (password: string, extra: Partial<pg.ClientConfig> = {}) =>
    new pg.Client({host: '127.0.0.1', port: gw.address.port, database: 'app', user: email, password, ssl: {ca: readFileSync(pki.ca, 'utf8'), servername: 'localhost'}, ...extra})

  /** The error a sign-in with `password` (as `user`, to `database`) ends with. */
  async function signInError(password: string, extra: Partial<pg.ClientConfig> = {}): Promise<pg.DatabaseError> {
    const c = client(password, extra)
    c.on('error', () => {})
    const error = await c.connect().then(
      () => undefined,
      (e: pg.DatabaseError) => e,
    )
    await c.end().catch(() => {})
    if (!error) throw new Error('the gateway let the client in')
    return error
  }

  const psqlUrl = (extra = '') => `host=127.0.0.1 port=${gw.address.port} sslmode=verify-full sslrootcert=${pki.ca} dbname=app user=${email} connect_timeout=10${extra}`

  it('is ready once the IdP keys are loaded', () => {
    expect(gw.ready).toBe(true)
    expect(gw.readiness()).toEqual([expect.objectContaining({name: 'idp-keys', ok: true})])
  })

  it('lets psql in with the SSO token as the password, over verify-full TLS, with guardrails and masking', async () => {
    const script = 'select id, email, plan from customers order by id;\ndelete from customers;\nselect count(*) as left_rows from customers;\n'
    const r = await run('psql', ['-X', '-v', 'ON_ERROR_STOP=0', '-At', psqlUrl()], {env: {PGPASSWORD: aliceToken}, input: script})
    expect(r.stderr).toMatch(/denied by rule default\./)
    expect(r.stdout).toMatch(/^1\|f\*+@example\.org\|pro$/m)
    expect(r.stdout).not.toMatch(/first\.buyer/)
    expect(r.stdout).toMatch(/^2$/m)
    expect(observer.statements).toContainEqual(['app', 'deny'])
    expect(observer.masked).toBeGreaterThan(0)
  })

  it('lets node-postgres in, names the person to the database, and never sends the token upstream', async () => {
    const c = client(aliceToken)
    await c.connect()
    try {
      const r = await c.query("select current_setting('application_name') as app, current_user as db_user, (select count(*) from pg_stat_activity where application_name like '%' || $1 || '%') as leaked", [aliceToken.slice(-24)])
      expect(r.rows[0].app).toMatch(/^dbgate\/a\*+@example\.com|^dbgate\/alice@example\.com/)
      expect(r.rows[0].db_user).toBe(db.user)
      expect(Number(r.rows[0].leaked)).toBe(0)
    } finally {
      await c.end()
    }
    await waitFor(() => observer.closed.length >= 2, 'the gateway has closed both connections')
    expect(observer.opened.filter((t) => t === 'app').length).toBeGreaterThanOrEqual(2)
  })

  it('records sessions signed with the gateway key, published as a gateway key, and they verify', async () => {
    const bucket = openBucket({url: `file://${path.join(dir, 'bucket')}`})
    const shipped = async () => {
      const keys: string[] = []
      for await (const o of bucket.list('sessions/')) if (o.key.endsWith('.jsonl.gz')) keys.push(o.key)
      return keys.length >= 2 && keys
    }
    const logs = await waitFor(shipped, 'two sessions are shipped to the bucket', {timeoutMs: 20_000, intervalMs: 200})
    const {keys} = await loadKeyRing(bucket)
    const key = keys.get(gw.signingKeyId)
    expect(key?.signer).toEqual({kind: 'gateway', name: 'gw-test'})
    for (const log of logs) {
      const text = gunzipSync((await bucket.get(log)).body).toString('utf8')
      expect(text).toContain('"email":"alice@example.com"')
      expect(text).not.toContain(aliceToken)
      // A gateway signs for everyone it serves: its sessions verify only for an auditor who names it.
      expect(verifySession(text, keys).problems.map((p) => p.code)).toContain('UNTRUSTED_SIGNER')
      const result = verifySession(text, keys, {trust: signerTrust(['gw-test'], undefined)})
      expect(result.problems).toEqual([])
      expect(result.keyIds).toEqual([gw.signingKeyId])
    }
  })

  it('speaks PostgreSQL 17 direct TLS (ALPN "postgresql") and signs in with the token', async () => {
    const s = await directTls(gw.address.port, await readFile(pki.ca, 'utf8'), ['postgresql'])
    const got: Buffer[] = []
    s.on('data', (d: Buffer) => got.push(d))
    s.write(encodeStartup({user: email, database: 'app'}))
    await waitFor(() => Buffer.concat(got).length >= 9, 'the authentication request (9 bytes) has arrived')
    // AuthenticationCleartextPassword: R, length 8, code 3.
    expect(Buffer.concat(got).subarray(0, 9)).toEqual(Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 3]))
    s.write(passwordMessage(aliceToken))
    // AuthenticationOk, then ParameterStatus… and ReadyForQuery ('Z').
    await waitFor(() => Buffer.concat(got).includes(Buffer.from([0x5a, 0, 0, 0, 5])), 'a ReadyForQuery has arrived')
    expect(Buffer.concat(got).subarray(9, 18)).toEqual(Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 0]))
    s.end(Buffer.from([0x58, 0, 0, 0, 4]))
  })

  it('closes a direct TLS connection that does not ask for ALPN "postgresql", before any protocol', async () => {
    const before = observer.failures.filter((r) => r === 'tls-handshake').length
    const s = await directTls(gw.address.port, await readFile(pki.ca, 'utf8'), undefined).catch(() => undefined)
    if (s) {
      const closed = readUntilClosed(s)
      s.write(encodeStartup({user: email, database: 'app'}))
      expect((await closed).length).toBe(0)
    }
    await waitFor(() => observer.failures.filter((r) => r === 'tls-handshake').length > before, 'the gateway counts the failed TLS handshake')
  })

  it('refuses a plaintext startup with a FATAL that says TLS is required and how', async () => {
    const r = await run('psql', ['-X', '-At', '-c', 'select 1', `host=127.0.0.1 port=${gw.address.port} sslmode=disable dbname=app user=${email}`], {env: {PGPASSWORD: aliceToken}})
    expect(r.code).not.toBe(0)
    expect(r.stderr).toMatch(/accepts connections over TLS only/)
    expect(r.stderr).toMatch(/sslmode=verify-full/)
    expect(observer.failures).toContain('no-tls')
    // And at the byte level: the error comes before anything else, and the connection closes.
    const s = net.connect(gw.address.port, '127.0.0.1')
    const closed = readUntilClosed(s)
    s.write(encodeStartup({user: email, database: 'app'}))
    const bytes = await closed
    expect(bytes[0]).toBe(0x45)
    expect(errorIn(bytes)).toMatchObject({severity: 'FATAL', code: '28000'})
  })

  it('closes a connection whose TLS handshake fails, or that sends bytes after SSLRequest before the handshake', async () => {
    const r = await run('psql', ['-X', '-At', '-c', 'select 1', `host=127.0.0.1 port=${gw.address.port} sslmode=verify-full sslrootcert=${pki.otherCa} dbname=app user=${email} connect_timeout=10`], {env: {PGPASSWORD: aliceToken}})
    expect(r.code).not.toBe(0)
    expect(r.stderr).toMatch(/certificate verify failed/)
    // Garbage where the ClientHello should be: closed, nothing answered but the 'S'.
    const s = net.connect(gw.address.port, '127.0.0.1')
    const closed = readUntilClosed(s)
    s.write(encodeSslRequest())
    await new Promise((resolve) => s.once('data', resolve))
    s.write(encodeStartup({user: email, database: 'app'}))
    expect((await closed).toString()).toBe('S')
    // A startup packet piggybacked on the SSLRequest would be read as if it came over TLS: refused unanswered.
    const t = net.connect(gw.address.port, '127.0.0.1')
    const tClosed = readUntilClosed(t)
    t.write(Buffer.concat([encodeSslRequest(), encodeStartup({user: email, database: 'app'})]))
    expect((await tClosed).length).toBe(0)
  })

  describe('refuses every bad token with 28P01 naming what is wrong and what to run', () => {
    const now = () => Math.floor(Date.now() / 1000)
    const claims = () => ({iss: f.dev.issuer, aud: f.dev.cliClientId, sub: 'alice', email, groups: ['engineering']})

    it('expired', async () => {
      const token = await mint(f.signingKey, {...claims(), iat: now() - 7200, exp: now() - 3600})
      const e = await signInError(token)
      expect(e.code).toBe('28P01')
      expect(e.message).toMatch(/the token has expired/)
      expect(e.hint).toMatch(/dbgate login/)
      expect(e.message + (e.hint ?? '')).not.toContain(token)
    })

    it('wrong audience', async () => {
      const e = await signInError(await mint(f.signingKey, {...claims(), aud: 'some-other-api'}))
      expect(e.code).toBe('28P01')
      expect(e.message).toMatch(/wrong audience/)
      expect(e.hint).toMatch(/dbgate login/)
    })

    it('wrong issuer', async () => {
      const e = await signInError(await mint(f.signingKey, {...claims(), iss: 'https://evil.example.com'}))
      expect(e.code).toBe('28P01')
      expect(e.message).toMatch(/wrong issuer/)
      expect(e.hint).toMatch(/dbgate login/)
    })

    it('tampered (groups added to a real token)', async () => {
      const [h, p, sig] = aliceToken.split('.')
      const body = JSON.parse(Buffer.from(p!, 'base64url').toString())
      body.groups = ['engineering', 'dba']
      const forged = `${h}.${Buffer.from(JSON.stringify(body)).toString('base64url')}.${sig}`
      // The attack: anything that reads the claims without checking the signature lets this token into dba_only.
      expect(decodeJwt(forged).groups).toContain('dba')
      const e = await signInError(forged, {database: 'dba_only'})
      expect(e.code).toBe('28P01')
      expect(e.message).toMatch(/signature does not verify/)
      expect(e.hint).toMatch(/dbgate login/)
    })

    it('unsigned (alg: none)', async () => {
      const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url')
      const e = await signInError(`${enc({alg: 'none', typ: 'JWT'})}.${enc({...claims(), exp: now() + 300})}.`)
      expect(e.code).toBe('28P01')
      expect(e.message).toMatch(/unsigned \(alg: none\)/)
      expect(e.hint).toMatch(/dbgate login/)
    })

    it('malformed (not a JWT at all, e.g. a database password)', async () => {
      const e = await signInError(db.password)
      expect(e.code).toBe('28P01')
      expect(e.message).toMatch(/malformed/)
      expect(e.hint).toMatch(/dbgate login/)
      expect(e.message).not.toContain(db.password)
    })

    it('counts each refusal by reason', () => {
      for (const r of ['token-expired', 'token-audience', 'token-issuer', 'token-signature', 'token-malformed'] as const) expect(observer.failures).toContain(r)
    })
  })

  it('refuses a valid token of someone outside the target\'s allow list with 28000 naming the groups that would let them in', async () => {
    const e = await signInError(aliceToken, {database: 'dba_only'})
    expect(e.code).toBe('28000')
    expect(e.message).toMatch(/alice@example\.com may not use target "dba_only"/)
    expect(e.hint).toMatch(/dba, sre/)
    expect(observer.failures).toContain('not-allowed')
  })

  it('refuses a user name that is not the token\'s identity', async () => {
    const e = await signInError(aliceToken, {user: 'bob@example.com'})
    expect(e.code).toBe('28000')
    expect(e.hint).toMatch(/user=alice@example\.com/)
  })

  it('says a database is not one of its targets, listing only those the person may use', async () => {
    const e = await signInError(aliceToken, {database: 'nope'})
    expect(e.code).toBe('3D000')
    expect(e.message).toMatch(/"nope" is not a target this gateway serves/)
    expect(e.hint).toMatch(/Targets you may use: app, down\./)
    expect(e.hint).not.toMatch(/dba_only/)
  })

  it('answers 08006 naming the target when its database is down', async () => {
    const e = await signInError(aliceToken, {database: 'down'})
    expect(e.code).toBe('08006')
    expect(e.message).toMatch(/target "down"/)
  })

  it('serves GET /v1/targets with the targets this identity may use', async () => {
    const get = (auth?: string) =>
      new Promise<{status: number; body: {targets?: {name: string}[]; identity?: string; error?: string}}>((resolve, reject) => {
        const req = https.request({host: '127.0.0.1', port: gw.api!.port, path: '/v1/targets', servername: 'localhost', ca: [readFileSyncCa()], headers: auth ? {authorization: `Bearer ${auth}`} : {}}, (res) => {
          let text = ''
          res.on('data', (d) => (text += d))
          res.on('end', () => resolve({status: res.statusCode!, body: JSON.parse(text)}))
        })
        req.on('error', reject)
        req.end()
      })
    const ok = await get(aliceToken)
    expect(ok).toEqual({status: 200, body: {identity: email, targets: [{name: 'app'}, {name: 'down'}]}})
    expect((await get()).status).toBe(401)
    const bad = await get(aliceToken.slice(0, -4) + 'AAAA')
    expect(bad.status).toBe(401)
    expect(bad.body.error).toBe('token-signature')
  })

  function readFileSyncCa(): string {
    return readFileSync(pki.ca, 'utf8')
  }
})
