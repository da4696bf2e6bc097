import {Command, Flags} from '@oclif/core'
import chalk from 'chalk'
import {startDemo} from '../demo/demo.js'

export default class Demo extends Command {
  static override summary = 'Try dbgate on this machine: an embedded database with sample data behind a tunnel.'
  static override description =
    'Starts, on loopback and with nothing installed beforehand, an embedded PostgreSQL holding a small shop (customers, orders, payments with fake personal data), writes a dbgate.yaml for it, opens a tunnel and prints what to try. Ctrl-C stops everything and removes what it started.'
  static override examples = ['$ dbgate demo', '$ dbgate demo --port 6432']
  static override flags = {
    port: Flags.integer({char: 'p', summary: 'Local port for the tunnel (default: a free port).', min: 0, max: 65535}),
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(Demo)
    const step = (line: string) => process.stderr.write(`${chalk.dim('demo:')} ${line}\n`)
    const env = await startDemo({log: step, port: flags.port})
    const {info} = env.tunnel
    this.log(
      [
        '',
        `${chalk.green('✓')} dbgate demo is running. In another terminal:`,
        '',
        `  ${chalk.bold('1. Connect with psql through the tunnel')}`,
        `     ${info.psql}`,
        '',
        `  ${chalk.bold('2. Look around')}`,
        '     select id, full_name, email from customers limit 5;',
        '     select status, count(*), sum(total_cents) from orders group by status;',
        '',
        `  ${chalk.bold('3. Or let dbgate start the client for you')}`,
        `     dbgate connect shop --config ${env.configPath} -- psql`,
        '',
        chalk.dim(`Config: ${env.configPath}   Database: 127.0.0.1:${env.database.port} (embedded, removed on exit)`),
        chalk.dim('Press Ctrl-C to stop the demo.'),
      ].join('\n'),
    )
    await new Promise<void>((resolve) => {
      const onSignal = () => {
        step('stopping: closing the tunnel, stopping PostgreSQL, removing files …')
        env.stop().then(resolve, resolve)
      }
      process.once('SIGINT', onSignal)
      process.once('SIGTERM', onSignal)
    })
    step('stopped; nothing left behind')
  }
}
