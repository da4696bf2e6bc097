import {Args, Flags} from '@oclif/core'
import chalk from 'chalk'
import {loadCommandConfig} from '../cli/config.js'
import {UsageError} from '../cli/errors.js'
import {EXIT_INTERRUPTED} from '../cli/exit-codes.js'
import {configFlag} from '../cli/flags.js'
import {openTunnel, type ConnectionInfo} from '../connect/open.js'
import {clientEnvironment, runClient} from '../connect/run-client.js'
import {describeRelease, idleMemoryReleaseWanted, startIdleMemoryRelease} from '../runtime/idle-memory.js'
import {DbgateCommand} from '../cli/base-command.js'
import {visible} from '../util/visible.js'

export default class Connect extends DbgateCommand {
  static override summary = 'Open a local tunnel to a database target.'
  static override description = [
    "Listens on 127.0.0.1 (or a private unix socket) and forwards every client session to the target. Clients authenticate with the tunnel's own random secret, printed once the tunnel is ready.",
    'With a command after --, runs it with PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE and DATABASE_URL pointing at the tunnel, closes the tunnel when it exits and exits with its code.',
  ].join('\n\n')
  static override examples = [
    '$ dbgate connect prod',
    '$ dbgate connect prod --port 6432',
    "$ dbgate connect prod -- psql -c 'select 1'",
    '$ dbgate connect prod --json',
    '$ dbgate connect prod --socket /run/user/1000/dbgate',
  ]
  static override strict = false
  static override args = {target: Args.string({description: 'Target name from dbgate.yaml.', required: true})}
  static override flags = {
    config: configFlag,
    port: Flags.integer({char: 'p', summary: 'Local port to listen on (default: a free port).', min: 0, max: 65535, env: 'DBGATE_PORT'}),
    listen: Flags.string({summary: 'IP address to listen on (localhost means 127.0.0.1; a name is refused unless --force-listen).', default: '127.0.0.1', env: 'DBGATE_LISTEN', helpValue: '<address>'}),
    'force-listen': Flags.boolean({summary: 'Allow a non-loopback --listen address (anyone who reaches it and has the secret acts as you).'}),
    socket: Flags.string({summary: 'Listen on a unix socket (mode 0600) in this directory instead of TCP.', helpValue: '<dir>', exclusive: ['listen', 'force-listen']}),
    json: Flags.boolean({summary: 'Print one JSON line with url, host, port, user, database and password once ready.'}),
    verbose: Flags.boolean({char: 'v', summary: 'Log each client connection.'}),
    'local-policy': Flags.boolean({summary: "Run the local file's policy even where the bucket has a published one (recorded in every session)."}),
  }

  async run(): Promise<void> {
    const dashdash = this.argv.indexOf('--')
    const own = dashdash >= 0 ? this.argv.slice(0, dashdash) : this.argv
    const command = dashdash >= 0 ? this.argv.slice(dashdash + 1) : []
    const {flags, args, argv} = await this.parse(Connect, own)
    if (argv.length > 1) throw new UsageError(`unexpected argument ${JSON.stringify(argv[1])}; put a command to run after --`)
    if (dashdash >= 0 && command.length === 0) throw new UsageError('nothing to run after --')
    idleMemoryReleaseWanted()
    const loaded = await loadCommandConfig(flags, this)
    const log = (level: 'info' | 'warn' | 'error', message: string) => {
      if (level === 'info' && !flags.verbose) return
      const tag = level === 'error' ? chalk.red('error') : level === 'warn' ? chalk.yellow('warning') : chalk.dim('info')
      // Log lines quote servers and clients (an upstream's error): shown as text, never obeyed by the terminal.
      process.stderr.write(`dbgate: ${tag}: ${visible(message, {lines: true})}\n`)
    }
    const opened = await openTunnel({
      loaded,
      targetName: args.target,
      listen: {host: flags.listen, port: flags.port, socket: flags.socket, force: flags['force-listen']},
      localPolicy: flags['local-policy'],
      log,
      // The command run after -- hears about a held statement from the tunnel as NOTICEs, on the
      // same terminal: saying it again here would announce it twice (-v still does).
      announce: command.length > 0 ? (m) => log('info', m) : undefined,
      // On a terminal only: scripts read stderr for errors, not for progress.
      progress: process.stderr.isTTY && !flags.json ? (m) => process.stderr.write(`${chalk.dim(m)}\n`) : undefined,
    })
    const {info, target} = opened
    // This process runs the tunnel: it gives memory back once its clients go quiet (-v logs it).
    startIdleMemoryRelease({onRelease: (r) => log('info', describeRelease(r))})

    if (command.length > 0) {
      let code: number
      try {
        code = await runClient(command, clientEnvironment(process.env, info.env, loaded.config))
      } finally {
        await opened.close(2000)
      }
      this.exit(code)
    }

    if (flags.json) {
      process.stdout.write(JSON.stringify({url: info.url, host: info.host, port: info.port, user: info.user, database: info.database, password: info.password, socket: info.socket, target: target.name}) + '\n')
    } else {
      this.log(readyBanner(target.name, `${target.host}:${target.port}/${target.database}`, info))
    }
    if (opened.identity) {
      const id = opened.identity.current()
      process.stderr.write(chalk.dim(`${visible(`Connected as ${id.email ?? id.subject}${id.kind === 'service' ? ' (service identity)' : ''}; groups: ${id.groups.join(', ') || 'none'}`)}\n`))
    } else {
      process.stderr.write(chalk.yellow('dbgate: warning: no identity section in the configuration, so this tunnel is not bound to a verified identity (see docs/identity.md)\n'))
    }
    await Promise.race([waitForInterrupt(opened.close), opened.closed])
  }
}

function readyBanner(name: string, upstream: string, info: ConnectionInfo): string {
  const where = info.socket ? `unix socket ${info.socket}` : `${info.host}:${info.port}`
  return [
    `${chalk.green('✓')} Tunnel to ${chalk.bold(name)} (${upstream}) is listening on ${where}`,
    '',
    `  URI:  ${info.url}`,
    `  psql: ${info.psql}`,
    '',
    chalk.dim('The password in the URI is this tunnel\'s secret; it stops working when the tunnel closes.'),
    chalk.dim('Press Ctrl-C to close the tunnel.'),
  ].join('\n')
}

/** Keeps the tunnel open until SIGINT/SIGTERM; a second Ctrl-C stops waiting for running statements. */
function waitForInterrupt(close: (graceMs?: number) => Promise<void>): Promise<void> {
  return new Promise((resolve) => {
    let stopping = false
    const onSignal = () => {
      if (stopping) {
        process.stderr.write('dbgate: closing now\n')
        process.exit(EXIT_INTERRUPTED)
      }
      stopping = true
      process.stderr.write('\ndbgate: closing the tunnel (running statements get 5 s to finish; Ctrl-C again to force)\n')
      close(5000).then(resolve, resolve)
    }
    process.on('SIGINT', onSignal)
    process.on('SIGTERM', onSignal)
  })
}
