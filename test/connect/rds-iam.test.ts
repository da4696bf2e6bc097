import {execFileSync} from 'node:child_process'
import {createHash, createHmac} from 'node:crypto'
import {mkdtemp, readFile, rm} from 'node:fs/promises'
import net from 'node:net'
import {tmpdir} from 'node:os'
import path from 'node:path'
import tls from 'node:tls'
import {afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi} from 'vitest'
import {ConfigError} from '../../src/config/errors.js'
import {parseConfigText} from '../../src/config/parse.js'
import {summarizeTargets} from '../../src/config/targets.js'
import type {TargetConfig} from '../../src/config/types.js'
import {upstreamTargetOf} from '../../src/connect/open.js'
import {connectUpstream, type UpstreamTarget} from '../../src/proxy/upstream.js'

// Fixed credentials (AWS's documentation example pair) and a fixed clock: no AWS is reachable.
const ACCESS_KEY = 'AKIDEXAMPLE'
const SECRET_KEY = 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY'
const NOW = new Date('2026-12-05T01:02:03Z')
const savedEnv = {...process.env}

function config(targetLines: string[]): TargetConfig {
  const text = ['targets:', '  prod:', ...targetLines.map((l) => `    ${l}`)].join('\n') + '\n'
  return parseConfigText(text, 'dbgate.yaml').config.targets.prod!
}

function configError(targetLines: string[]): ConfigError {
  try {
    config(targetLines)
  } catch (error) {
    if (error instanceof ConfigError) return error
    throw error
  }
  throw new Error('expected a configuration error')
}

const iamTarget = (host: string, port: number, extra: string[] = ['tls: require']) =>
  config([`host: ${host}`, `port: ${port}`, 'database: app', 'user: app_iam', 'password: {rdsIam: {region: eu-west-1}}', ...extra])

/** SigV4 query-string presigning, written from the AWS documentation, independent of the SDK. */
function expectedSignature(p: {host: string; port: number; user: string; region: string; date: Date}): {query: Record<string, string>; signature: string} {
  const amzDate = p.date.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '')
  const day = amzDate.slice(0, 8)
  const scope = `${day}/${p.region}/rds-db/aws4_request`
  const query: Record<string, string> = {
    Action: 'connect',
    DBUser: p.user,
    'X-Amz-Algorithm': 'AWS4-HMAC-SHA256',
    'X-Amz-Credential': `${ACCESS_KEY}/${scope}`,
    'X-Amz-Date': amzDate,
    'X-Amz-Expires': '900',
    'X-Amz-SignedHeaders': 'host',
  }
  const enc = (s: string) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
  const canonicalQuery = Object.keys(query)
    .sort()
    .map((k) => `${enc(k)}=${enc(query[k]!)}`)
    .join('&')
  const emptyHash = createHash('sha256').update('').digest('hex')
  const canonicalRequest = ['GET', '/', canonicalQuery, `host:${p.host}:${p.port}`, '', 'host', emptyHash].join('\n')
  const stringToSign = ['AWS4-HMAC-SHA256', amzDate, scope, createHash('sha256').update(canonicalRequest).digest('hex')].join('\n')
  const hmac = (key: string | Buffer, data: string) => createHmac('sha256', key).update(data).digest()
  const signingKey = hmac(hmac(hmac(hmac(`AWS4${SECRET_KEY}`, day), p.region), 'rds-db'), 'aws4_request')
  return {query, signature: createHmac('sha256', signingKey).update(stringToSign).digest('hex')}
}

/** Splits `host:port/?query` as RDS reads it. */
function parseToken(token: string): {hostPort: string; params: URLSearchParams} {
  const url = new URL(`https://${token}`)
  expect(url.pathname).toBe('/')
  return {hostPort: url.host, params: url.searchParams}
}

function expectValidToken(token: string, p: {host: string; port: number; user: string; date: Date}) {
  const {hostPort, params} = parseToken(token)
  expect(hostPort).toBe(`${p.host}:${p.port}`)
  const {query, signature} = expectedSignature({...p, region: 'eu-west-1'})
  for (const [k, v] of Object.entries(query)) expect(params.get(k), k).toBe(v)
  expect(params.get('X-Amz-Signature')).toBe(signature)
  expect(params.has('X-Amz-Security-Token')).toBe(false)
}

beforeEach(() => {
  process.env = {...savedEnv, AWS_ACCESS_KEY_ID: ACCESS_KEY, AWS_SECRET_ACCESS_KEY: SECRET_KEY, AWS_EC2_METADATA_DISABLED: 'true'}
  delete process.env.AWS_SESSION_TOKEN
  delete process.env.AWS_PROFILE
  vi.useFakeTimers({toFake: ['Date']})
  vi.setSystemTime(NOW)
})
afterEach(() => {
  vi.useRealTimers()
  process.env = {...savedEnv}
})

describe('RDS IAM authentication: configuration', () => {
  it('password: {rdsIam: {region, profile}} gives the target an IAM setting and no password source', () => {
    const t = config(['host: db.abc.eu-west-1.rds.amazonaws.com', 'database: app', 'user: app_iam', 'password: {rdsIam: {region: eu-west-1, profile: prod-db}}', 'tls: verify-full'])
    expect(t.rdsIam).toEqual({region: 'eu-west-1', profile: 'prod-db'})
    expect(t.password).toBeUndefined()
    // `dbgate targets` says how the password is supplied
    const [summary] = summarizeTargets({recording: {previewRows: 5}, targets: {prod: t}} as unknown as Parameters<typeof summarizeTargets>[0])
    expect(summary).toMatchObject({passwordKind: 'rds-iam', passwordSource: 'rdsIam:eu-west-1/prod-db'})
  })

  it('is refused without TLS, at the line of tls when written, and at the target when the default applies', () => {
    const written = configError(['host: db.internal', 'database: app', 'user: app_iam', 'password: {rdsIam: {region: eu-west-1}}', 'tls: prefer'])
    expect(written.issues).toEqual([
      expect.objectContaining({line: 7, keyPath: 'targets.prod.tls', message: expect.stringContaining('needs TLS to the database'), fix: expect.stringContaining('tls: verify-full')}),
    ])
    const defaulted = configError(['host: db.internal', 'database: app', 'user: app_iam', 'password: {rdsIam: {region: eu-west-1}}'])
    expect(defaulted.issues).toEqual([expect.objectContaining({line: 2, message: expect.stringContaining('tls is prefer')})])
  })

  it('says what is wrong with a bad region or an unknown key', () => {
    const bad = configError(['host: db.internal', 'database: app', 'user: app_iam', 'password: {rdsIam: {region: Ireland, profil: x}}', 'tls: require'])
    const found = bad.issues.map((i) => `${i.keyPath} ${i.message}`)
    expect(found).toEqual(expect.arrayContaining([expect.stringMatching(/^targets\.prod\.password\.rdsIam\.region .*AWS region/), expect.stringMatching(/^targets\.prod\.password\.rdsIam\.profil unknown key/)]))
  })

  it('upstreamTargetOf refuses IAM without TLS for a target built without the schema (a gateway)', async () => {
    const t: TargetConfig = {...iamTarget('db.internal', 5432), tls: 'disable'}
    await expect(upstreamTargetOf(t)).rejects.toMatchObject({code: 'RDS_IAM_NEEDS_TLS', message: expect.stringContaining('targets.prod')})
  })
})

describe('RDS IAM authentication: tokens', () => {
  it('makes a token for the host, port, user and region, valid 15 minutes, with a SigV4 signature recomputed here', async () => {
    const upstream = await upstreamTargetOf(iamTarget('db.abc.eu-west-1.rds.amazonaws.com', 5432))
    expect(typeof upstream.password).toBe('function')
    const token = await (upstream.password as () => Promise<string>)()
    expectValidToken(token, {host: 'db.abc.eu-west-1.rds.amazonaws.com', port: 5432, user: 'app_iam', date: NOW})
    // the secret key never appears in what is sent
    expect(token).not.toContain(SECRET_KEY)
  })

  it('a new token for each call, signed at that moment', async () => {
    const upstream = await upstreamTargetOf(iamTarget('db.internal', 6432))
    const make = upstream.password as () => Promise<string>
    const first = await make()
    const later = new Date(NOW.getTime() + 14 * 60_000)
    vi.setSystemTime(later)
    const second = await make()
    expect(second).not.toBe(first)
    expectValidToken(second, {host: 'db.internal', port: 6432, user: 'app_iam', date: later})
  })
})

describe('RDS IAM authentication: the upstream login', () => {
  let dir: string
  let key: string
  let cert: string
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'dbgate-rds-iam-'))
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=localhost', '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem')], {stdio: 'ignore'})
    key = await readFile(path.join(dir, 'key.pem'), 'utf8')
    cert = await readFile(path.join(dir, 'cert.pem'), 'utf8')
  })
  afterAll(async () => {
    await rm(dir, {recursive: true, force: true})
  })

  /**
   * A stand-in for RDS on loopback: TLS only (SSLRequest answered 'S'), then a cleartext password
   * request, as RDS makes for IAM users. It records each password it receives and lets the login in.
   */
  async function fakeRds(): Promise<{port: number; passwords: string[]; plainAttempts: number; close(): Promise<void>}> {
    const passwords: string[] = []
    let plainAttempts = 0
    const sockets = new Set<net.Socket>()
    const server = net.createServer((raw) => {
      sockets.add(raw)
      raw.once('data', (first) => {
        if (first.length !== 8 || first.readInt32BE(4) !== 80877103) {
          plainAttempts++
          raw.destroy()
          return
        }
        raw.write('S')
        const secure = new tls.TLSSocket(raw, {isServer: true, key, cert})
        let buf = Buffer.alloc(0)
        let startupSeen = false
        secure.on('data', (chunk: Buffer) => {
          buf = Buffer.concat([buf, chunk])
          if (!startupSeen) {
            if (buf.length < 4 || buf.length < buf.readInt32BE(0)) return
            buf = buf.subarray(buf.readInt32BE(0))
            startupSeen = true
            secure.write(Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 3])) // AuthenticationCleartextPassword
          }
          if (buf.length < 5 || buf.length < 1 + buf.readInt32BE(1)) return
          if (buf[0] !== 0x70) return void secure.destroy()
          const len = buf.readInt32BE(1)
          passwords.push(buf.subarray(5, 1 + len - 1).toString('utf8'))
          buf = buf.subarray(1 + len)
          const ok = Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 0])
          const keyData = Buffer.from([0x4b, 0, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0, 2])
          const ready = Buffer.from([0x5a, 0, 0, 0, 5, 0x49])
          secure.write(Buffer.concat([ok, keyData, ready]))
        })
        secure.on('error', () => secure.destroy())
      })
      raw.on('error', () => raw.destroy())
      raw.on('close', () => sockets.delete(raw))
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    return {
      port: (server.address() as net.AddressInfo).port,
      passwords,
      get plainAttempts() {
        return plainAttempts
      },
      close: () =>
        new Promise<void>((resolve) => {
          for (const s of sockets) s.destroy()
          server.close(() => resolve())
        }),
    }
  }

  it('each upstream connection logs in with a fresh token, sent inside TLS', async () => {
    const rds = await fakeRds()
    try {
      const upstream = await upstreamTargetOf(iamTarget('127.0.0.1', rds.port))
      const first = await connectUpstream(upstream, {application_name: 'rds-iam test'})
      expect(first.encrypted).toBe(true)
      first.socket.destroy()
      const later = new Date(NOW.getTime() + 60_000)
      vi.setSystemTime(later)
      const second = await connectUpstream(upstream, {application_name: 'rds-iam test'})
      second.socket.destroy()

      expect(rds.passwords).toHaveLength(2)
      expectValidToken(rds.passwords[0]!, {host: '127.0.0.1', port: rds.port, user: 'app_iam', date: NOW})
      expectValidToken(rds.passwords[1]!, {host: '127.0.0.1', port: rds.port, user: 'app_iam', date: later})
      expect(rds.plainAttempts).toBe(0)
    } finally {
      await rds.close()
    }
  })

  it('a password function that fails ends the login with 08001 naming the user, and sends nothing', async () => {
    const rds = await fakeRds()
    try {
      const upstream: UpstreamTarget = {
        host: '127.0.0.1',
        port: rds.port,
        database: 'app',
        user: 'app_iam',
        tls: 'require',
        password: async () => {
          throw new Error('no AWS credentials found')
        },
      }
      await expect(connectUpstream(upstream, {})).rejects.toMatchObject({sqlstate: '08001', message: expect.stringMatching(/app_iam.*no AWS credentials found/)})
      expect(rds.passwords).toEqual([])
    } finally {
      await rds.close()
    }
  })
})
