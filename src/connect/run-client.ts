import {spawn} from 'node:child_process'
import {EXIT_COMMAND_NOT_EXECUTABLE, EXIT_COMMAND_NOT_FOUND, EXIT_USAGE} from '../cli/exit-codes.js'

export class ClientCommandError extends Error {
  override name = 'ClientCommandError'
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message)
  }
}

/**
 * Runs the user's client with the tunnel in its environment and resolves with its exit code.
 * Ctrl-C belongs to the client while it runs (psql uses it to cancel a query), so the parent
 * ignores SIGINT until the child is gone.
 */
export function runClient(command: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const [cmd, ...args] = command
  if (!cmd) return Promise.reject(new ClientCommandError('no command given after --', EXIT_USAGE))
  return new Promise((resolve, reject) => {
    const ignore = () => {}
    process.on('SIGINT', ignore)
    const child = spawn(cmd, args, {stdio: 'inherit', env})
    const forwardTerm = () => child.kill('SIGTERM')
    process.on('SIGTERM', forwardTerm)
    const done = () => {
      process.off('SIGINT', ignore)
      process.off('SIGTERM', forwardTerm)
    }
    child.on('error', (e: NodeJS.ErrnoException) => {
      done()
      reject(
        e.code === 'ENOENT'
          ? new ClientCommandError(`cannot run "${cmd}": command not found`, EXIT_COMMAND_NOT_FOUND)
          : new ClientCommandError(`cannot run "${cmd}": ${e.message}`, EXIT_COMMAND_NOT_EXECUTABLE),
      )
    })
    child.on('exit', (code, signal) => {
      done()
      // A shell reports death by signal N as 128+N; so do we.
      resolve(code ?? (signal ? 128 + (signalNumbers[signal] ?? 1) : 1))
    })
  })
}

const signalNumbers: Record<string, number> = {SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGTERM: 15, SIGPIPE: 13}

/** dbgate's own credentials in the environment: a person's token, a service identity's secret. */
const DBGATE_CREDENTIALS = ['DBGATE_TOKEN', 'DBGATE_CLIENT_SECRET']

/** The variables `env:` secret sources of the configuration read (targets' passwords, identity.clientSecret, …). */
export function secretVariables(config: unknown): string[] {
  const names = new Set<string>()
  const walk = (value: unknown): void => {
    if (Array.isArray(value)) return value.forEach(walk)
    if (value === null || typeof value !== 'object') return
    const ref = value as {kind?: unknown; name?: unknown}
    if (ref.kind === 'env' && typeof ref.name === 'string') names.add(ref.name)
    Object.values(value).forEach(walk)
  }
  walk(config)
  return [...names]
}

/**
 * The person's libpq variables the client keeps: each shapes the session it opens (its settings,
 * its label, how long it waits), never where or as whom it connects. The tunnel refuses what it
 * must (PGOPTIONS, a client encoding other than UTF8) loudly, so those stay too. Every other `PG…`
 * variable is dropped: libpq reads a service (PGSERVICE, from PGSERVICEFILE or PGSYSCONFDIR's
 * pg_service.conf) before the environment, so its host, port, database and user replaced the
 * tunnel's, and it dials PGHOSTADDR in place of PGHOST; either sent `dbgate connect prod -- psql` to
 * the database itself, with no policy, masking or recording.
 */
const KEPT_PG_VARIABLES = new Set(['PGAPPNAME', 'PGCLIENTENCODING', 'PGCONNECT_TIMEOUT', 'PGDATESTYLE', 'PGTZ', 'PGGEQO', 'PGOPTIONS', 'PGSYSCONFDIR', 'PGLOCALEDIR'])

/**
 * The environment of the client run after `--`: the parent's, with the tunnel's libpq variables,
 * and without the credentials dbgate itself reads, nor libpq variables that would take the client
 * elsewhere (`KEPT_PG_VARIABLES`). The client is often an agent or a script; with the database's own
 * password (`password: env:PROD_DB_PASSWORD`) it could sign in to the database around the tunnel,
 * and with DBGATE_TOKEN or DBGATE_CLIENT_SECRET as the person elsewhere.
 */
export function clientEnvironment(parent: NodeJS.ProcessEnv, tunnel: Record<string, string>, config: unknown): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {...parent}
  for (const name of [...DBGATE_CREDENTIALS, ...secretVariables(config)]) delete env[name]
  for (const name of Object.keys(env)) if (name.startsWith('PG') && !KEPT_PG_VARIABLES.has(name)) delete env[name]
  return {...env, ...tunnel}
}
