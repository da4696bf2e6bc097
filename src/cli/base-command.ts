/**
 * Every dbgate command extends this: failures end in one place (src/cli/errors.ts decides the
 * message, the next step and the exit code), printed unwrapped, and colour follows the environment.
 */
import {Command, Errors, ux} from '@oclif/core'
import chalk from 'chalk'
import {colorEnabled} from './color.js'
import {jsonText, visible} from '../util/visible.js'
import {describeFailure, failureJson, formatFailure} from './errors.js'

export abstract class DbgateCommand extends Command {
  protected override async init(): Promise<void> {
    await super.init()
    // NO_COLOR and FORCE_COLOR=0 switch off every colour dbgate prints, not only chalk's own guess.
    if (!colorEnabled(process.stdout)) chalk.level = 0
  }

  /** `--json` output: oclif's, with control, bidi and invisible characters written as `\u` escapes of four hex digits (src/util/visible.ts). */
  override logJson(json: unknown): void {
    ux.stdout(ux.colorizeJson(jsonText(json), {pretty: false, theme: this.config.theme?.json}))
  }

  /**
   * A warning on stderr, unwrapped (oclif's own wraps long paths mid-word); quiet under --json.
   * Warnings name what they are about (a bucket key, a record's field, a server's answer), which
   * whoever wrote it chose: shown with `visible`, so nothing in them acts on the terminal.
   */
  protected warning(message: string): void {
    this.logToStderr(`Warning: ${visible(message, {lines: true})}`)
  }

  protected override async catch(err: Error & {exitCode?: number}): Promise<unknown> {
    // `this.exit(n)` is how a command ends on purpose with a code (e.g. a client's exit code).
    if (err instanceof Errors.ExitError) throw err
    const failure = describeFailure(err, this.id)
    if (this.jsonEnabled()) {
      // Under --json the error is the output: printed on stdout, the exit code set, nothing thrown.
      this.logJson(failureJson(failure))
      process.exitCode = failure.exit
      return undefined
    }
    this.logToStderr(formatFailure(failure, {red: (s) => (colorEnabled(process.stderr) ? chalk.red(s) : s)}))
    // Already printed: oclif's handler only takes the exit code from it.
    const done = new Errors.CLIError(failure.message, {exit: failure.exit, code: failure.code})
    throw Object.assign(done, {exitCode: failure.exit, skipOclifErrorHandling: true, suggestions: failure.next ? [failure.next] : undefined})
  }
}
