/** The oclif side of the identity commands: error mapping shared by login, whoami and logout. */
import {Errors} from '@oclif/core'
import {IdentityError, LoginAbortedError} from './errors.js'
import {exitCodeFor, IdentityNotConfiguredError, type CliIO} from './cli.js'

/**
 * An identity failure as an oclif error: its message, its next step as the suggestion, its stable
 * code, and the exit code from `exitCodeFor`. Anything else passes through untouched.
 */
export function identityCliError(err: unknown, out: {logToStderr(message: string): void}): unknown {
  if (!(err instanceof IdentityError) && !(err instanceof IdentityNotConfiguredError)) return err
  const exit = exitCodeFor(err)
  const e = Object.assign(new Errors.CLIError(err.message, {exit, code: err.code}), {exitCode: exit})
  if (err instanceof LoginAbortedError) {
    // Ctrl-C is the user's own decision: one plain line, no "Error:" banner, exit 130.
    out.logToStderr('\nSign-in cancelled.')
    e.skipOclifErrorHandling = true
    return e
  }
  if (err.nextStep) e.suggestions = [err.nextStep]
  return e
}

export function processIO(): CliIO {
  return {err: process.stderr, interactive: Boolean(process.stderr.isTTY), env: process.env}
}

/** Ctrl-C aborts the returned signal instead of killing the process, so cleanup and exit 130 happen. */
export function interruptSignal(): {signal: AbortSignal; dispose(): void} {
  const controller = new AbortController()
  const onSigint = () => controller.abort()
  process.once('SIGINT', onSigint)
  return {signal: controller.signal, dispose: () => process.removeListener('SIGINT', onSigint)}
}
