import {spawn} from 'node:child_process'

export interface RunResult {
  code: number | null
  stdout: string
  stderr: string
}

/** Runs a real program (psql, pgbench, the dbgate CLI) and captures what a user would see. */
export function run(cmd: string, args: string[], opts: {env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number; cwd?: string} = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {env: {...process.env, ...opts.env}, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe']})
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000)
    child.on('error', (e: NodeJS.ErrnoException) =>
      reject(e.code === 'ENOENT' ? new Error(`${cmd} is not installed: install the Debian packages postgresql-client and postgresql-contrib (.ci/run does)`) : e),
    )
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({code, stdout, stderr})
    })
    // A program that exits without reading its input (openssl) closes the pipe: EPIPE here is not
    // the run's failure, its exit code says how it went.
    child.stdin.on('error', () => {})
    child.stdin.end(opts.input ?? '')
  })
}

/** libpq environment pointing at a test tunnel. */
export function pgEnv(port: number, secret: string, database: string): NodeJS.ProcessEnv {
  return {PGHOST: '127.0.0.1', PGPORT: String(port), PGUSER: 'dbgate', PGPASSWORD: secret, PGDATABASE: database, PGCONNECT_TIMEOUT: '10'}
}
