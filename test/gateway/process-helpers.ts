import {spawn, type ChildProcess} from 'node:child_process'
import http from 'node:http'
import {readdir, readFile} from 'node:fs/promises'
import path from 'node:path'
import {gunzipSync} from 'node:zlib'
import {readFileSync} from 'node:fs'
import pg from 'pg'
import {mint} from '../identity/helpers.js'
import {untilProbe} from '../helpers/wait.js'
import type {JWK} from 'jose'

const BIN = path.resolve('bin/run.js')

export interface LogLine {
  level: string
  msg: string
  [field: string]: unknown
}

/** `node bin/run.js gateway` as a child process, its JSON log lines collected as they come. */
export class GatewayProcess {
  readonly lines: LogLine[] = []
  /** Standard output as written, every byte (what a log collector would store). */
  stdout = ''
  stderr = ''
  readonly exited: Promise<{code: number | null; signal: NodeJS.Signals | null}>
  private readonly child: ChildProcess
  private waiters: (() => void)[] = []

  constructor(configFile: string, env: NodeJS.ProcessEnv, args: string[] = []) {
    this.child = spawn('node', [BIN, 'gateway', '--config', configFile, ...args], {env: {...process.env, ...env}, stdio: ['ignore', 'pipe', 'pipe']})
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

  /** Waits for "ready to accept" and returns the addresses it names. */
  async started(): Promise<{port: number; ops: number}> {
    const l = await this.line((x) => /ready to accept/.test(x.msg))
    return {port: (l.address as {port: number}).port, ops: (l.ops as {port: number}).port}
  }

  kill(): void {
    if (this.child.exitCode === null) this.child.kill('SIGKILL')
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
