import {Flags} from '@oclif/core'
import chalk from 'chalk'
import {EXIT_FAILURE, EXIT_INTERRUPTED} from '../cli/exit-codes.js'
import {demoBanner} from '../demo/banner.js'
import {startDemo, type DemoEnvironment} from '../demo/demo.js'
import {demoFeatures} from '../demo/features.js'
import {formatStep} from '../demo/steps.js'
import {runTour} from '../demo/tour.js'
import {DbgateCommand} from '../cli/base-command.js'

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const

export default class Demo extends DbgateCommand {
  static override summary = 'Try dbgate on this machine: a sample database, three people, the whole tour.'
  static override description = `Starts, on loopback and with nothing installed beforehand, an embedded PostgreSQL holding a small shop (customers, orders, payments with fake personal data), a DEVELOPMENT identity provider with three users (alice, engineer; bob, reviewer; carol, auditor), a local bucket directory, and a gateway (TLS with a certificate from a CA it makes) that alone holds the database password, writes a dbgate.yaml for the three people that names the gateway and holds no credentials, and prints what to run in three terminals: sign in, connect, see masking and guardrails, get a statement approved, audit the session.

With --script, plays that tour unattended and prints each step's outcome; exits 1 if any step fails.

Ctrl-C stops everything and removes what it started.`
  static override examples = ['$ dbgate demo', '$ dbgate demo --script', '$ dbgate demo --script --keep']
  static override flags = {
    script: Flags.boolean({summary: 'Run the whole tour unattended and report each step.', default: false}),
    keep: Flags.boolean({summary: 'Keep the demo directory (configuration, bucket, everyone\'s files, the report) after stopping; PostgreSQL, the identity provider and the gateway stop either way.', default: false}),
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(Demo)
    const note = (line: string) => process.stderr.write(`${chalk.dim('demo:')} ${line}\n`)
    // Signals are ours from the start: an interrupt while PostgreSQL is still starting must clean up too.
    const interrupt = new AbortController()
    const onSignal = () => interrupt.abort()
    for (const sig of SIGNALS) process.on(sig, onSignal)
    // A closed terminal (SIGHUP) takes stdout and stderr with it: writing then fails with EIO or
    // EPIPE, and an unhandled stream error would end the process before it stops PostgreSQL and
    // removes the demo directory. Output nobody can read is dropped; the cleanup goes on.
    const onOutputError = (error: NodeJS.ErrnoException) => {
      if (!['EPIPE', 'EIO', 'ENOTCONN', 'ECONNRESET'].includes(error.code ?? '')) throw error
    }
    process.stdout.on('error', onOutputError)
    process.stderr.on('error', onOutputError)
    let env: DemoEnvironment | undefined
    let failed = false
    let stoppedAfterBanner = false
    try {
      env = await startDemo({log: note, keep: flags.keep})
      if (!interrupt.signal.aborted) {
        if (flags.script) failed = await this.script(env, interrupt.signal, flags.keep)
        else {
          await this.interactive(env, interrupt.signal)
          stoppedAfterBanner = true
        }
      }
    } catch (error) {
      // An interrupted start fails somewhere inside PostgreSQL's startup; the interrupt is the news.
      if (!interrupt.signal.aborted) throw error
    } finally {
      note('stopping: the gateway, PostgreSQL, the identity provider, removing files …')
      await env?.stop()
      for (const sig of SIGNALS) process.off(sig, onSignal)
      note(!env ? 'stopped' : flags.keep ? `stopped; kept ${env.dir} (the bucket, everyone's files${flags.script ? ', carol/evidence/report.html' : ''})` : `stopped; removed ${env.dir}`)
    }
    // Ctrl-C after the banner is how the interactive demo is meant to end: a success.
    if (interrupt.signal.aborted && !stoppedAfterBanner) this.exit(EXIT_INTERRUPTED)
    if (failed) this.exit(EXIT_FAILURE)
  }

  private async interactive(env: DemoEnvironment, signal: AbortSignal): Promise<void> {
    const {masking} = demoFeatures()
    this.log(demoBanner(env, {masking, approveCommand: Boolean(this.config.findCommand('approve'))}, chalk))
    await new Promise<void>((resolve) => {
      if (signal.aborted) resolve()
      signal.addEventListener('abort', () => resolve(), {once: true})
    })
  }

  /** True when a step failed. */
  private async script(env: DemoEnvironment, signal: AbortSignal, keep: boolean): Promise<boolean> {
    this.log(`dbgate demo --script: the tour, unattended (config ${env.configPath})\n`)
    const paint = {pass: chalk.green, fail: chalk.red, skip: chalk.yellow}
    const approvalCommands = Boolean(this.config.findCommand('approve') && this.config.findCommand('approvals:list'))
    const results = await runTour(env, {signal, approvalCommands, keep, onStep: (r) => this.log(paint[r.status](formatStep(r)))})
    const count = (status: string) => results.filter((r) => r.status === status).length
    this.log(`\n${count('pass')} passed, ${count('skip')} skipped, ${count('fail')} failed`)
    return count('fail') > 0
  }
}
