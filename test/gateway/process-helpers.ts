/**
 * The one way the gateway tests run `dbgate gateway` as a process (one gateway, a `--workers`
 * primary, or each of several replicas), and what they read from it: its JSON log, its ops
 * endpoint, its spool, the bucket it ships to.
 */
import {spawn, type ChildProcess} from 'node:child_process'
import http from 'node:http'
import {mkdir, readdir, readFile, writeFile} from 'node:fs/promises'
import path from 'node:path'
import net from 'node:net'
import {gunzipSync} from 'node:zlib'
import {readFileSync} from 'node:fs'
import pg from 'pg'
import {encodeCancelRequest} from '../../src/wire/frontend.js'
import {spoolDir} from '../../src/util/paths.js'
import type {TestS3} from '../audit/s3rver.js'
import {mint} from '../identity/helpers.js'
import {untilProbe} from '../helpers/wait.js'
import type {JWK} from 'jose'
import type {TestPki} from './helpers.js'

const BIN = path.resolve('bin/run.js')

export interface LogLine {
  level: string
  msg: string
  [field: string]: unknown
}

/** `node bin/run.js gateway --config FILE` as a child process, its JSON log lines collected as they come. */
export class GatewayProcess {
  /** Where it accepts PostgreSQL connections, once `started()` has resolved. */
  port = 0
  /** Its ops endpoint's port, once started (0 with `ops: off`). */
  ops = 0
  /** The id of the key that signs its recordings, once started. */
  keyId = ''
  readonly lines: LogLine[] = []
  /** Standard output as written, every byte (what a log collector would store). */
  stdout = ''
  stderr = ''
  readonly exited: Promise<{code: number | null; signal: NodeJS.Signals | null}>
  private readonly child: ChildProcess
  private waiters: (() => void)[] = []

  constructor(configFile: string, env: NodeJS.ProcessEnv, args: string[] = []) {
    this.child = spawn(process.execPath, [BIN, 'gateway', '--config', configFile, ...args], {env: {...process.env, ...env, NO_COLOR: '1'}, stdio: ['ignore', 'pipe', 'pipe']})
    let partial = ''
    this.child.stdout!.on('data', (d: Buffer) => {
      this.stdout += d.toString()
      partial += d.toString()
      const parts = partial.split('\n')
      partial = parts.pop()!
      for (const p of parts) {
        try {
          this.lines.push(JSON.parse(p) as LogLine)
        } catch {
          this.lines.push({level: 'not-json', msg: p})
        }
      }
      for (const w of this.waiters.splice(0)) w()
    })
    this.child.stderr!.on('data', (d: Buffer) => {
      this.stderr += d.toString()
    })
    this.exited = new Promise((resolve) => this.child.on('exit', (code, signal) => resolve({code, signal})))
  }

  get pid(): number {
    return this.child.pid!
  }

  signal(sig: NodeJS.Signals): void {
    this.child.kill(sig)
  }

  /** The first log line that matches, waiting for it (or failing when the process exits first). */
  async line(match: (l: LogLine) => boolean, timeoutMs = 30_000): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs
    let exited = false
    void this.exited.then(() => {
      exited = true
      for (const w of this.waiters.splice(0)) w()
    })
    for (;;) {
      const found = this.lines.find(match)
      if (found) return found
      if (exited) throw new Error(`the gateway exited before logging the line; stdout:\n${this.stdout}\nstderr:\n${this.stderr}`)
      if (Date.now() > deadline) throw new Error(`no such log line within ${timeoutMs} ms; stdout:\n${this.stdout}\nstderr:\n${this.stderr}`)
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve)
        setTimeout(resolve, 200)
      })
    }
  }

  /**
   * Waits for "ready to accept" (logged once people can sign in) and returns the addresses it
   * names; a gateway that does not get there in time is killed, so no test leaves one behind.
   */
  async started(timeoutMs = 60_000): Promise<{port: number; ops: number; keyId: string}> {
    const l = await this.line((x) => /ready to accept/.test(x.msg), timeoutMs).catch((error: unknown) => {
      this.kill()
      throw error
    })
    this.port = (l.address as {port: number}).port
    this.ops = (l.ops as {port: number} | undefined)?.port ?? 0
    this.keyId = String(l.signingKeyId)
    return {port: this.port, ops: this.ops, keyId: this.keyId}
  }

  /** Everything it wrote so far, standard output and error. */
  log(): string {
    return this.stdout + this.stderr
  }

  /** SIGTERM (a drain), and waits for it to go. */
  async stop(): Promise<{code: number | null; signal: NodeJS.Signals | null}> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM')
    return this.exited
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL')
  }
}

export function httpGet(port: number, p: string): Promise<{status: number; body: string}> {
  return new Promise((resolve, reject) => {
    http
      .get({host: '127.0.0.1', port, path: p}, (res) => {
        let body = ''
        res.on('data', (d: Buffer) => (body += d.toString()))
        res.on('end', () => resolve({status: res.statusCode ?? 0, body}))
      })
      .on('error', reject)
  })
}

/** Polls until `fn` returns a value (not undefined); a failing `fn` counts as not yet. */
export const until = <T>(fn: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> => untilProbe(fn, 'the probe answers', {timeoutMs, intervalMs: 150})

/** A token for alice, signed by the test IdP's key. */
export function aliceToken(key: JWK, issuer: string, audience: string, ttlSeconds = 600, extra: Record<string, unknown> = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000)
  return mint(key, {iss: issuer, aud: audience, sub: 'alice', email: 'alice@example.com', groups: ['engineering'], exp: now + ttlSeconds, ...extra})
}

export function gatewayClient(port: number, ca: string, password: string, database = 'app'): pg.Client {
  const c = new pg.Client({host: '127.0.0.1', port, database, user: 'alice@example.com', password, ssl: {ca: readFileSync(ca, 'utf8'), servername: 'localhost'}})
  return c
}

/** The text of every recording in a file bucket (`sessions/**.jsonl.gz`). */
export async function bucketRecordings(bucketDir: string): Promise<string[]> {
  const out: string[] = []
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, {withFileTypes: true}).catch(() => [])) {
      const p = path.join(d, e.name)
      if (e.isDirectory()) await walk(p)
      else if (e.name.endsWith('.jsonl.gz')) out.push(gunzipSync(await readFile(p)).toString('utf8'))
    }
  }
  await walk(path.join(bucketDir, 'sessions'))
  return out
}

/** The environment a replica (and an auditor's CLI) needs for the s3rver bucket. */
export const S3_ENV = {AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1'}

export interface ReplicaSpec {
  /** Directory of this replica: its configuration file and its state (keys, spool, caches). */
  dir: string
  pki: TestPki
  s3: TestS3
  issuer: string
  clientId: string
  targets: string[]
  server?: string[]
  /** Top-level lines, e.g. a `tunnel:` section. */
  top?: string[]
  /** Its PostgreSQL listener (default: a port the system picks). */
  listen?: string
}

/**
 * The configuration file of one replica. Replicas are identical but for their own state directory:
 * they share only the bucket (s3rver), as behind any TCP load balancer.
 */
export async function writeReplicaConfig(spec: ReplicaSpec): Promise<string> {
  await mkdir(spec.dir, {recursive: true})
  const text = [
    'server:',
    '  name: gw-ha',
    `  listen: ${spec.listen ?? '127.0.0.1:0'}`,
    `  tls: {cert: ${spec.pki.cert}, key: ${spec.pki.key}}`,
    `  stateDir: ${path.join(spec.dir, 'state')}`,
    '  ops: 127.0.0.1:0',
    ...(spec.server ?? []).map((l) => `  ${l}`),
    'identity:',
    `  issuer: ${spec.issuer}`,
    `  clientId: ${spec.clientId}`,
    'bucket:',
    `  url: s3://${spec.s3.bucketName}/dbgate`,
    `  endpoint: ${spec.s3.endpoint}`,
    '  forcePathStyle: true',
    '  region: us-east-1',
    ...(spec.top ?? []),
    'targets:',
    ...spec.targets,
    '',
  ].join('\n')
  const file = path.join(spec.dir, 'gateway.yaml')
  await writeFile(file, text)
  return file
}

/** The spool of a replica's recordings (the gateway keeps its state under server.stateDir). */
export function replicaSpoolDir(dir: string): string {
  return spoolDir({XDG_STATE_HOME: path.join(dir, 'state', 'state')})
}

/** Session logs waiting in a replica's spool. */
export async function spooledLogs(dir: string): Promise<string[]> {
  const names = await readdir(replicaSpoolDir(dir)).catch(() => [] as string[])
  return names.filter((n) => n.endsWith('.jsonl')).sort()
}

export async function spooledText(dir: string, name: string): Promise<string> {
  return readFile(path.join(replicaSpoolDir(dir), name), 'utf8')
}

/** One replica: `dbgate gateway --config FILE --workers 1`, once it is ready to accept. */
export async function startReplica(configFile: string, env: NodeJS.ProcessEnv): Promise<GatewayProcess> {
  const gw = new GatewayProcess(configFile, env, ['--workers', '1'])
  await gw.started()
  return gw
}

/** A node-postgres client of a replica, signing in with `token` over verify-full TLS. */
export function replicaClient(port: number, pki: TestPki, user: string, token: string, database = 'app'): pg.Client {
  return new pg.Client({host: '127.0.0.1', port, database, user, password: token, ssl: {ca: readFileSync(pki.ca, 'utf8'), servername: 'localhost'}})
}

/** A CancelRequest as libpq sends it: plain TCP, to whichever worker or replica takes the connection. */
export function sendCancel(port: number, processId: number, secretKey: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = net.connect({host: '127.0.0.1', port}, () => s.end(encodeCancelRequest(processId, secretKey)))
    s.on('close', () => resolve())
    s.on('error', reject)
  })
}
