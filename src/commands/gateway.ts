import {availableParallelism} from 'node:os'
import {Flags} from '@oclif/core'
import {loadCommandConfig} from '../cli/config.js'
import {CONFIG_NOT_FOUND, ConfigError} from '../config/errors.js'
import {DbgateCommand} from '../cli/base-command.js'
import {GatewayConfigError} from '../gateway/gateway.js'
import {runGateway} from '../gateway/run.js'
import {idleMemoryReleaseWanted} from '../runtime/idle-memory.js'

/** What a missing gateway.yaml should start as (a client's minimal dbgate.yaml would not start a gateway). */
const MINIMAL_GATEWAY = `server:
  listen: 0.0.0.0:6432
  tls: {cert: /etc/dbgate/tls.crt, key: /etc/dbgate/tls.key}
identity:
  issuer: https://login.example.com
  clientId: dbgate-cli
bucket: s3://acme-audit/dbgate
targets:
  prod:
    host: db.internal
    database: app
    user: app_rw
    password: env:PROD_DB_PASSWORD
    allow: [engineering]`

export default class Gateway extends DbgateCommand {
  static override summary = 'Run the shared gateway: enforcement and database credentials off the laptop.'
  static override description = [
    'Serves the PostgreSQL protocol over TLS. People sign in with their SSO token as the password; the database name picks the target; the gateway holds the targets\' credentials, runs policy, approvals, masking and recording for each person, and signs the recordings with its own key.',
    'The configuration is a dbgate configuration with a `server` section (listen address, TLS certificate and key, API address, signing key, ops endpoint, drain timeout, log level). See docs/gateway.md.',
    'Logs are JSON lines on standard output. SIGTERM drains (stop accepting, let sessions finish up to server.drainTimeout, ship the spool, exit 0); SIGHUP reloads the policies and the TLS certificate.',
  ].join('\n\n')
  static override examples = [
    '$ dbgate gateway --config /etc/dbgate/gateway.yaml',
    '$ dbgate gateway --config gateway.yaml --workers 4',
    '$ PGPASSWORD=$(dbgate token) psql "host=gw.internal sslmode=verify-full dbname=prod user=alice@example.com"',
  ]
  static override flags = {
    config: Flags.string({char: 'c', summary: "The gateway's configuration file.", env: 'DBGATE_CONFIG', helpValue: '<file>', required: true}),
    workers: Flags.integer({summary: 'Worker processes sharing the port (default: the cores available).', env: 'DBGATE_GATEWAY_WORKERS', min: 1, max: 256, helpValue: '<n>'}),
    verbose: Flags.boolean({char: 'v', summary: 'Log at debug level (overrides server.log.level).'}),
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(Gateway)
    idleMemoryReleaseWanted()
    const loaded = await loadCommandConfig(flags, this).catch((error: unknown) => {
      if (error instanceof ConfigError && error.code === CONFIG_NOT_FOUND) {
        throw new ConfigError(CONFIG_NOT_FOUND, error.message, {searched: error.searched, hint: `Fix the path, or create the file; a minimal gateway.yaml (docs/gateway.md):\n\n${MINIMAL_GATEWAY}`})
      }
      throw error
    })
    if (!loaded.config.server) {
      throw new GatewayConfigError(`${loaded.path} has no server section, so it does not configure a gateway`, 'add server: {listen: 0.0.0.0:6432, tls: {cert: tls.crt, key: tls.key}} (see docs/gateway.md)')
    }
    await runGateway({loaded, workers: flags.workers ?? availableParallelism(), ...(flags.verbose ? {logLevel: 'debug' as const} : {})})
  }
}
