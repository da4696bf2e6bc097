import {spawn, type ChildProcess} from 'node:child_process'
import {readFileSync} from 'node:fs'
import {writeFile} from 'node:fs/promises'
import path, {join} from 'node:path'
import {isolatedEnv} from './open.js'
import type {UpstreamInfo} from './pg.js'

const BIN = path.resolve('bin/run.js')

/** Rules that allow every class of statement: the tests that use this look at recording and memory, not at policy. */
export const ALLOW_ALL = ['read', 'write', 'ddl', 'admin', 'opaque'].flatMap((c) => [`      - id: allow-${c}`, `        match: {class: ${c}}`, '        action: allow'])

export interface ConnectProcess {
  child: ChildProcess
  /** A connection string for the tunnel. */
  url: string
  env: NodeJS.ProcessEnv
  spoolDir: string
  stderr(): string
  /** The process's peak resident memory so far, in bytes (Linux `VmHWM`). */
  peakRss(): number
  stop(): Promise<void>
}

/**
 * `dbgate connect app` as a user runs it, in a process of its own, in front of `db`, with an
 * isolated home. `limitFileKib` runs it under `ulimit -f` (the kernel then refuses writes past that
 * size in any one file).
 */
export async function spawnConnect(db: UpstreamInfo, opts: {rules?: string[]; limitFileKib?: number; env?: NodeJS.ProcessEnv} = {}): Promise<ConnectProcess> {
  const env: NodeJS.ProcessEnv = {...isolatedEnv(), APP_DB_PASSWORD: db.password, DBGATE_TOKEN: '', DBGATE_CLIENT_ID: '', ...opts.env}
  const configPath = join(env.HOME!, 'dbgate.yaml')
  const lines = ['targets:', '  app:', `    host: ${db.host}`, `    port: ${db.port}`, `    database: ${db.database}`, `    user: ${db.user}`, '    password: env:APP_DB_PASSWORD', '    tls: disable', '    rules:', ...(opts.rules ?? ALLOW_ALL), '']
  await writeFile(configPath, lines.join('\n'))
  env.DBGATE_CONFIG = configPath
  const command = `${opts.limitFileKib ? `ulimit -f ${opts.limitFileKib} && ` : ''}exec node "$0" connect app --json`
  const child = spawn('bash', ['-c', command, BIN], {env: {...process.env, ...env}, stdio: ['ignore', 'pipe', 'pipe']})
  let out = ''
  let err = ''
  child.stderr!.on('data', (d) => (err += d))
  const info = await new Promise<{url: string}>((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      out += d
      if (out.includes('\n')) resolve(JSON.parse(out.split('\n')[0]!))
    })
    child.once('exit', (code) => reject(new Error(`dbgate connect exited (${code}) before it was ready: ${err}`)))
  })
  return {
    child,
    url: info.url,
    env,
    spoolDir: env.DBGATE_SPOOL_DIR ?? join(env.XDG_STATE_HOME!, 'dbgate', 'spool'),
    stderr: () => err,
    peakRss: () => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))![1]) * 1024,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return
      const exited = new Promise((r) => child.once('exit', r))
      child.kill('SIGKILL')
      await exited
    },
  }
}
