import {readdirSync, readFileSync} from 'node:fs'
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import net from 'node:net'
import tls from 'node:tls'
import {gunzipSync} from 'node:zlib'
import {Client} from '@modelcontextprotocol/sdk/client/index.js'
import {StreamableHTTPClientTransport} from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import type {JWK} from 'jose'
import {fetch as undiciFetch, type Agent} from 'undici'
import {parseConfigText} from '../../src/config/parse.js'
import type {LoadedConfig} from '../../src/config/types.js'
import {freePort} from '../../src/dev/embedded-pg.js'
import {encodeSslRequest} from '../../src/wire/frontend.js'
import {startDevOidcProvider, type DevProvider} from '../../src/dev/oidc-dev-provider.js'
import {startGateway, type RunningGateway} from '../../src/gateway/gateway.js'
import {createCertificateAuthority, writeServerPki} from '../../src/util/tls-certs.js'
import {isolatedEnv, targetConfigText} from '../helpers/open.js'
import {createTestDatabase, type UpstreamInfo} from '../helpers/pg.js'
import {mint, rsaSigningKey} from '../identity/helpers.js'

export interface TestPki {
  dir: string
  ca: string
  cert: string
  key: string
  /** A CA that did not sign the gateway's certificate. */
  otherCa: string
}

/** A CA and a server certificate for 127.0.0.1 and localhost, made in-process (no openssl CLI needed). */
export async function makePki(): Promise<TestPki> {
  const dir = await mkdtemp(path.join(tmpdir(), 'dbgate-pki-'))
  const files = await writeServerPki(dir, ['localhost', '127.0.0.1'], {caName: 'dbgate test ca'})
  const otherCa = path.join(dir, 'other-ca.pem')
  await writeFile(otherCa, createCertificateAuthority('dbgate test other-ca').cert)
  return {dir, ...files, otherCa}
}

export interface GatewayConfigOptions {
  pki: TestPki
  dir: string
  issuer: string
  clientId: string
  targets: string[]
  server?: string[]
  /** Lines added to the `identity:` section. */
  identity?: string[]
  env: NodeJS.ProcessEnv
}

/** A gateway configuration: `server`, `identity`, a file bucket and the given targets' YAML lines. */
export function gatewayConfig(opts: GatewayConfigOptions): LoadedConfig {
  const text = gatewayConfigText(opts)
  const file = path.join(opts.dir, 'gateway.yaml')
  const parsed = parseConfigText(text, file, {env: opts.env, homeDir: opts.env.HOME})
  return {path: file, ...parsed}
}

/** The YAML text `gatewayConfig` parses, for a gateway run as a process from a file. */
export function gatewayConfigText(opts: Omit<GatewayConfigOptions, 'env'>): string {
  return [
    'server:',
    '  name: gw-test',
    '  listen: 127.0.0.1:0',
    `  tls: {cert: ${opts.pki.cert}, key: ${opts.pki.key}}`,
    '  api: 127.0.0.1:0',
    `  stateDir: ${path.join(opts.dir, 'state')}`,
    ...(opts.server?.some((l) => l.startsWith('pipelineIdle:')) ? [] : ['  pipelineIdle: 1s']),
    ...(opts.server ?? []).map((l) => `  ${l}`),
    'identity:',
    `  issuer: ${opts.issuer}`,
    `  clientId: ${opts.clientId}`,
    ...(opts.identity ?? []).map((l) => `  ${l}`),
    `bucket: file://${path.join(opts.dir, 'bucket')}`,
    'targets:',
    ...opts.targets,
    '',
  ].join('\n')
}

/** A raw TLS connection as PostgreSQL 17's direct TLS makes it (no SSLRequest first). */
export function directTls(port: number, ca: string, alpn: string[] | undefined): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({host: '127.0.0.1', port, ca, servername: 'localhost', ...(alpn ? {ALPNProtocols: alpn} : {})})
    s.once('secureConnect', () => resolve(s))
    s.once('error', reject)
  })
}

/** A TLS connection as libpq makes it: an SSLRequest on plain TCP, then the handshake once the gateway answers. */
export async function sslRequestTls(port: number, ca: string, localAddress?: string): Promise<tls.TLSSocket> {
  const raw = net.connect({host: '127.0.0.1', port, ...(localAddress ? {localAddress} : {})})
  raw.on('error', () => {})
  await new Promise((resolve) => raw.once('connect', resolve))
  raw.write(encodeSslRequest())
  await new Promise((resolve) => raw.once('data', resolve))
  const socket = tls.connect({socket: raw, ca, servername: 'localhost'})
  await new Promise((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject))
  return socket
}

/** Everything the server sends until it closes the connection. */
export function readUntilClosed(s: import('node:net').Socket, timeoutMs = 10_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = []
    const timer = setTimeout(() => reject(new Error('the server did not close the connection')), timeoutMs)
    s.on('data', (d: Buffer) => parts.push(d))
    s.on('error', () => {})
    s.on('close', () => {
      clearTimeout(timer)
      resolve(Buffer.concat(parts))
    })
  })
}

/** Every recording a gateway with its state and file bucket under `dir` has written so far, spooled or shipped. */
export function recordingsUnder(dir: string): string[] {
  return readdirSync(dir, {recursive: true, encoding: 'utf8'})
    .filter((f) => f.endsWith('.jsonl') || f.endsWith('.jsonl.gz'))
    .flatMap((f) => {
      let bytes: Buffer
      try {
        bytes = readFileSync(path.join(dir, f))
      } catch (error) {
        // The shipper removes a spool file once its object is in the bucket, possibly between the listing and this read;
        // the shipped copy is then found on the next look.
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return []
        throw error
      }
      return [f.endsWith('.gz') ? gunzipSync(bytes).toString('utf8') : bytes.toString('utf8')]
    })
}

/** For afterAll: closes a gateway test's gateway and identity provider, and removes its directories. */
export async function closeGatewayTest(gw: {close(graceMs: number): Promise<unknown>} | undefined, idp: {close(): Promise<unknown>} | undefined, dirs: (string | undefined)[]): Promise<void> {
  await gw?.close(500)
  await idp?.close()
  await Promise.all(dirs.filter((d): d is string => d !== undefined).map((d) => rm(d, {recursive: true, force: true})))
}

/**
 * A gateway whose IdP can be stopped and started again with another signing key, on the same
 * issuer address: for tests of outages and withdrawn keys. `token(key)` mints alice's token,
 * signed with `key`, as the IdP would have; `idpStart(key)` restarts the IdP publishing only `key`.
 */
export interface RotatingIdpGateway {
  pki: TestPki
  db: UpstreamInfo
  gw: RunningGateway
  keys: [JWK, JWK]
  email: string
  issuer: string
  token(key: JWK): Promise<string>
  idpStop(): Promise<void>
  idpStart(key: JWK): Promise<void>
  /** TLS options for a client of the gateway's PostgreSQL listener. */
  ssl(): {ca: string; servername: string}
  close(): Promise<void>
}

export async function rotatingIdpGateway(name: string, opts: {server?: string[]; keyCheckMs?: number; target?: string} = {}): Promise<RotatingIdpGateway> {
  const [pki, db, idpPort, key1, key2] = await Promise.all([makePki(), createTestDatabase(name), freePort(), rsaSigningKey(`${name}-key-1`), rsaSigningKey(`${name}-key-2`)])
  const issuer = `http://127.0.0.1:${idpPort}`
  let idp: DevProvider | undefined = await startDevOidcProvider({port: idpPort, signingKey: key1})
  const dir = await mkdtemp(path.join(tmpdir(), `dbgate-${name}-`))
  const env = {...isolatedEnv(), TEST_APP_PASSWORD: db.password}
  const loaded = gatewayConfig({pki, dir, issuer, clientId: 'dbgate-cli', env, server: opts.server, targets: targetConfigText('app', db, opts.target ?? 'allow: [engineering]')})
  const gw = await startGateway({loaded, env, ...(opts.keyCheckMs !== undefined ? {keyCheckMs: opts.keyCheckMs} : {})})
  await gw.whenReady()
  const email = 'alice@example.com'
  return {
    pki,
    db,
    gw,
    keys: [key1, key2],
    email,
    issuer,
    token: (key) => mint(key, {iss: issuer, aud: 'dbgate-cli', sub: 'alice', email, groups: ['engineering'], exp: Math.floor(Date.now() / 1000) + 3600}),
    async idpStop() {
      await idp?.stop()
      idp = undefined
    },
    async idpStart(key) {
      idp = await startDevOidcProvider({port: idpPort, signingKey: key})
    },
    ssl: () => ({ca: readFileSync(pki.ca, 'utf8'), servername: 'localhost'}),
    async close() {
      await gw.close(500)
      await idp?.stop()
      await Promise.all([dir, pki.dir].map((d) => rm(d, {recursive: true, force: true})))
    },
  }
}

/**
 * A fetch for the MCP SDK's HTTP transport that goes through `dispatcher()` (an undici Agent that
 * trusts the suite's CA), read at each request: a test makes its Agent in beforeAll.
 */
export function throughDispatcher(dispatcher: () => Agent): typeof fetch {
  return ((url: string | URL, init?: RequestInit) => undiciFetch(url, {...(init as object), dispatcher: dispatcher()})) as unknown as typeof fetch
}

/** An agent's MCP session at a gateway's remote endpoint `url`, signed in with `bearer`. */
export async function remoteAgent(url: string, bearer: string, opts: {fetch: typeof fetch; name?: string; version?: string}): Promise<{client: Client; transport: StreamableHTTPClientTransport}> {
  const client = new Client({name: opts.name ?? 'hosted-agent', version: opts.version ?? '1'})
  const transport = new StreamableHTTPClientTransport(new URL(url), {fetch: opts.fetch, requestInit: {headers: {authorization: `Bearer ${bearer}`}}})
  await client.connect(transport)
  return {client, transport}
}
