/** Turns dbgate's typed errors into oclif errors with the right exit code and clean output. */
import {Errors} from '@oclif/core'
import {ConfigError} from '../config/errors.js'
import {SecretError} from '../config/secrets.js'
import {TargetNotFoundError} from '../config/targets.js'
import {EXIT_USAGE} from './exit-codes.js'

export interface ErrorOutput {
  /** Quiet under --json, as oclif's Command#logToStderr is. */
  logToStderr(message: string): void
}

function cliError(message: string, code: string, exit: number, extra: Record<string, unknown> = {}): Errors.CLIError {
  const err = new Errors.CLIError(message, {exit, code})
  // oclif reads `exitCode` when it reports an error as --json output, and `oclif.exit` otherwise.
  return Object.assign(err, {exitCode: exit}, extra)
}

/**
 * For a command's `catch`: `return super.catch(toCliError(err, this))`. A ConfigError is printed
 * here, in compiler format, because oclif's renderer would wrap and indent its file:line:col
 * lines; under --json its issues become part of the JSON error instead.
 */
export function toCliError(err: unknown, out: ErrorOutput): unknown {
  if (err instanceof ConfigError) {
    out.logToStderr(err.format())
    const e = cliError(err.message, err.code, EXIT_USAGE, {issues: err.issues, warnings: err.warnings, searched: err.searched})
    e.skipOclifErrorHandling = true
    return e
  }
  if (err instanceof SecretError || err instanceof TargetNotFoundError) {
    const e = cliError(err.message, err.code, EXIT_USAGE)
    e.suggestions = [err.fix]
    return e
  }
  return err
}
