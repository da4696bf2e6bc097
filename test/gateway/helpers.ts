import {readdirSync, readFileSync} from 'node:fs'
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import tls from 'node:tls'
import {gunzipSync} from 'node:zlib'
import {parseConfigText} from '../../src/config/parse.js'
import type {LoadedConfig} from '../../src/config/types.js'
import {createCertificateAuthority, writeServerPki} from '../../src/util/tls-certs.js'

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
