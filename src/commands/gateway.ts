import chalk from 'chalk'
import {Flags} from '@oclif/core'
import {loadCommandConfig} from '../cli/config.js'
import {DbgateCommand} from '../cli/base-command.js'
import {EXIT_INTERRUPTED} from '../cli/exit-codes.js'
import {startGateway} from '../gateway/gateway.js'

export default class Gateway extends DbgateCommand {
  static override summary = 'Run the shared gateway: enforcement and database credentials off the laptop.'
  static override description = [
    'Serves the PostgreSQL protocol over TLS. People sign in with their SSO token as the password; the database name picks the target; the gateway holds the targets\' credentials, runs policy, approvals, masking and recording for each person, and signs the recordings with its own key.',
    'The configuration is a dbgate configuration with a `server` section (listen address, TLS certificate and key, API address, signing key). See docs/gateway.md.',
  ].join('\n\n')
  static override examples = ['$ dbgate gateway --config /etc/dbgate/gateway.yaml', '$ PGPASSWORD=$(dbgate token) psql "host=gw.internal sslmode=verify-full dbname=prod user=alice@example.com"']
  static override flags = {
    config: Flags.string({char: 'c', summary: "The gateway's configuration file.", env: 'DBGATE_CONFIG', helpValue: '<file>', required: true}),
    verbose: Flags.boolean({char: 'v', summary: 'Log each sign-in.'}),
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(Gateway)
    const loaded = await loadCommandConfig(flags, this)
    const log = (level: 'info' | 'warn' | 'error', message: string) => {
      if (level === 'info' && !flags.verbose) return
      const tag = level === 'error' ? chalk.red('error') : level === 'warn' ? chalk.yellow('warning') : chalk.dim('info')
      process.stderr.write(`dbgate gateway: ${tag}: ${message}\n`)
    }
    const gw = await startGateway({loaded, log})
    this.log(`${chalk.green('✓')} Gateway listening on ${gw.address.host}:${gw.address.port}${gw.api ? `; API on https://${gw.api.host}:${gw.api.port}` : ''}; signing key ${gw.signingKeyId}`)
    if (!gw.ready) this.warning(`not ready yet: ${gw.readiness().find((c) => !c.ok)?.detail ?? 'waiting'}`)
    await new Promise<void>((resolve) => {
      let stopping = false
      const onSignal = () => {
        if (stopping) process.exit(EXIT_INTERRUPTED)
        stopping = true
        process.stderr.write('dbgate gateway: stopping (running statements get 10 s to finish; signal again to force)\n')
        gw.close(10_000).then(resolve, resolve)
      }
      process.on('SIGINT', onSignal)
      process.on('SIGTERM', onSignal)
    })
  }
}
