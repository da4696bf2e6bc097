/**
 * A PgBouncer in session mode in front of the benchmark's PostgreSQL: generated ini and userlist in
 * a private temporary directory, a free loopback port, run in the foreground as our child. With
 * `clientTls`, clients must use TLS (client_tls_sslmode = require) with a certificate made for the run.
 */
import {spawn, type ChildProcess} from 'node:child_process'
import {access, chmod, chown, mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import {constants} from 'node:fs'
import {createConnection} from 'node:net'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {freePort} from '../dev/embedded-pg.js'
import {writeServerPki} from '../util/tls-certs.js'
import type {Endpoint} from './client.js'

export interface PgBouncer {
  endpoint: Endpoint
  pid: number
  version: string
  stop(): Promise<void>
}

const CANDIDATES = ['/usr/sbin/pgbouncer', '/usr/local/sbin/pgbouncer', '/usr/bin/pgbouncer', '/usr/local/bin/pgbouncer']

/** The pgbouncer executable on PATH or in the usual sbin directories, if any. */
export async function findPgBouncer(): Promise<string | undefined> {
  const dirs = (process.env.PATH ?? '').split(path.delimiter).filter(Boolean)
  for (const p of [...dirs.map((d) => path.join(d, 'pgbouncer')), ...CANDIDATES]) {
    try {
      await access(p, constants.X_OK)
      return p
    } catch {
      // not here
    }
  }
  return undefined
}

async function uidOf(user: string): Promise<{uid: number; gid: number} | undefined> {
  const passwd = await readFile('/etc/passwd', 'utf8').catch(() => '')
  for (const line of passwd.split('\n')) {
    const f = line.split(':')
    if (f[0] === user) return {uid: Number(f[2]), gid: Number(f[3])}
  }
  return undefined
}

function quoteUserlist(s: string): string {
  return `"${s.replace(/"/g, '""')}"`
}

function waitForPort(host: string, port: number, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  return new Promise((resolve, reject) => {
    const attempt = () => {
      if (child.exitCode !== null) return reject(new Error(`pgbouncer exited with code ${child.exitCode} before listening`))
      const s = createConnection({host, port})
      s.once('connect', () => {
        s.destroy()
        resolve()
      })
      s.once('error', () => {
        s.destroy()
        if (Date.now() > deadline) reject(new Error(`pgbouncer did not listen on ${host}:${port} within ${timeoutMs} ms`))
        else setTimeout(attempt, 50)
      })
    }
    attempt()
  })
}

/** A certificate for localhost and 127.0.0.1 (EC P-256), for one run, made in-process. */
async function makeCertificate(dir: string): Promise<{cert: string; key: string}> {
  const {cert, key} = await writeServerPki(dir, ['localhost', '127.0.0.1'], {caName: 'dbgate bench CA', validDays: 1})
  return {cert, key}
}

export interface PgBouncerOptions {
  maxClients: number
  /** Clients must connect with TLS (sslmode=require), on a certificate made for this run. */
  clientTls?: boolean
}

export async function startPgBouncer(exe: string, upstream: Endpoint, opts: PgBouncerOptions): Promise<PgBouncer> {
  const dir = await mkdtemp(path.join(tmpdir(), 'dbgate-bench-pgbouncer-'))
  let child: ChildProcess | undefined
  try {
    const port = await freePort()
    const tls = opts.clientTls ? await makeCertificate(dir) : undefined
    const ini = [
      '[databases]',
      `${upstream.database} = host=${upstream.host} port=${upstream.port} dbname=${upstream.database}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      'auth_type = scram-sha-256',
      `auth_file = ${path.join(dir, 'userlist.txt')}`,
      'pool_mode = session',
      `max_client_conn = ${opts.maxClients + 50}`,
      `default_pool_size = ${opts.maxClients + 50}`,
      'max_db_connections = 0',
      'ignore_startup_parameters = extra_float_digits',
      `logfile = ${path.join(dir, 'pgbouncer.log')}`,
      'log_connections = 0',
      'log_disconnections = 0',
      'log_pooler_errors = 1',
      'server_tls_sslmode = disable',
      ...(tls ? ['client_tls_sslmode = require', `client_tls_cert_file = ${tls.cert}`, `client_tls_key_file = ${tls.key}`] : []),
      '',
    ].join('\n')
    await writeFile(path.join(dir, 'pgbouncer.ini'), ini, {mode: 0o600})
    await writeFile(path.join(dir, 'userlist.txt'), `${quoteUserlist(upstream.user)} ${quoteUserlist(upstream.password)}\n`, {mode: 0o600})
    const args = [path.join(dir, 'pgbouncer.ini')]
    // PgBouncer refuses to run as root; run it as the postgres system user, which must own its files.
    if (process.getuid?.() === 0) {
      const owner = (await uidOf('postgres')) ?? (await uidOf('nobody'))
      if (!owner) throw new Error('running as root, and there is no postgres or nobody user for pgbouncer to run as')
      for (const f of ['', 'pgbouncer.ini', 'userlist.txt', ...(tls ? ['server.crt', 'server.key'] : [])]) await chown(path.join(dir, f), owner.uid, owner.gid)
      await chmod(dir, 0o700)
      args.unshift('-u', (await uidOf('postgres')) ? 'postgres' : 'nobody')
    }
    const version = await new Promise<string>((resolve) => {
      const v = spawn(exe, ['--version'], {stdio: ['ignore', 'pipe', 'ignore']})
      let out = ''
      v.stdout.on('data', (d: Buffer) => (out += d.toString()))
      v.on('close', () => resolve(out.split('\n')[0]?.trim() ?? 'unknown'))
      v.on('error', () => resolve('unknown'))
    })
    let stderr = ''
    child = spawn(exe, args, {stdio: ['ignore', 'ignore', 'pipe']})
    child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)))
    const started = child
    await waitForPort('127.0.0.1', port, started, 10_000).catch(async (error: Error) => {
      const log = await readFile(path.join(dir, 'pgbouncer.log'), 'utf8').catch(() => '')
      throw new Error(`${error.message}\n${stderr}${log.slice(-2000)}`)
    })
    const stop = async () => {
      if (started.exitCode === null && started.signalCode === null) {
        const exited = new Promise<void>((resolve) => started.once('exit', () => resolve()))
        started.kill('SIGTERM')
        const timer = setTimeout(() => started.kill('SIGKILL'), 3000)
        await exited
        clearTimeout(timer)
      }
      await rm(dir, {recursive: true, force: true})
    }
    return {endpoint: {...upstream, host: '127.0.0.1', port, ...(tls ? {sslmode: 'require' as const} : {})}, pid: started.pid!, version, stop}
  } catch (error) {
    child?.kill('SIGKILL')
    await rm(dir, {recursive: true, force: true})
    throw error
  }
}

/** Resident set size of a process, from /proc. */
export async function rssOf(pid: number): Promise<number | undefined> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '')
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status)
  return m ? Number(m[1]) * 1024 : undefined
}
