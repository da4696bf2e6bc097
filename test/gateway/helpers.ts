import {mkdtemp, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import tls from 'node:tls'
import {parseConfigText} from '../../src/config/parse.js'
import type {LoadedConfig} from '../../src/config/types.js'
import {run} from '../helpers/run.js'

export interface TestPki {
  dir: string
  ca: string
  cert: string
  key: string
  /** A CA that did not sign the gateway's certificate. */
  otherCa: string
}

async function openssl(args: string[], cwd: string): Promise<void> {
  const r = await run('openssl', args, {cwd, timeoutMs: 30_000})
  if (r.code !== 0) throw new Error(`openssl ${args[0]} failed: ${r.stderr}`)
}

/** A CA and a server certificate for 127.0.0.1 and localhost, made by the openssl CLI. */
export async function makePki(): Promise<TestPki> {
  const dir = await mkdtemp(path.join(tmpdir(), 'dbgate-pki-'))
  const subj = (cn: string) => ['-subj', `/CN=${cn}`]
  for (const name of ['ca', 'other-ca']) {
    await openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '2', ...subj(`dbgate test ${name}`)], dir)
  }
  await openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', ...subj('localhost')], dir)
  await writeFile(path.join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n')
  await openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '2', '-extfile', 'san.ext'], dir)
  return {dir, ca: path.join(dir, 'ca.pem'), cert: path.join(dir, 'server.crt'), key: path.join(dir, 'server.key'), otherCa: path.join(dir, 'other-ca.pem')}
}

/** A gateway configuration: `server`, `identity`, a file bucket and the given targets' YAML lines. */
export function gatewayConfig(opts: {pki: TestPki; dir: string; issuer: string; clientId: string; targets: string[]; server?: string[]; env: NodeJS.ProcessEnv}): LoadedConfig {
  const text = [
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
    `bucket: file://${path.join(opts.dir, 'bucket')}`,
    'targets:',
    ...opts.targets,
    '',
  ].join('\n')
  const file = path.join(opts.dir, 'gateway.yaml')
  const parsed = parseConfigText(text, file, {env: opts.env, homeDir: opts.env.HOME})
  return {path: file, ...parsed}
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
