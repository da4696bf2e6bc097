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
export function runClient(command: string[], env: Record<string, string>): Promise<number> {
  const [cmd, ...args] = command
  if (!cmd) return Promise.reject(new ClientCommandError('no command given after --', EXIT_USAGE))
  return new Promise((resolve, reject) => {
    const ignore = () => {}
    process.on('SIGINT', ignore)
    const child = spawn(cmd, args, {stdio: 'inherit', env: {...process.env, ...env}})
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
