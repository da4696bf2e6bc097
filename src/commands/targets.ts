import {loadCommandConfig} from '../cli/config.js'
import {configFlag} from '../cli/flags.js'
import {renderTable, type Column} from '../cli/table.js'
import {summarizeTargets, type TargetSummary} from '../config/targets.js'
import {DbgateCommand} from '../cli/base-command.js'

const columns: Column<TargetSummary>[] = [
  {header: 'NAME', value: (t) => t.name},
  {header: 'ADDRESS', value: (t) => `${t.host}:${t.port}`},
  {header: 'DATABASE', value: (t) => t.database},
  {header: 'USER', value: (t) => t.user},
  {header: 'TLS', value: (t) => t.tls},
  {header: 'PASSWORD', value: (t) => t.passwordSource ?? 'none'},
  {header: 'ALLOW', value: (t) => (t.allow ? t.allow.join(',') : 'any')},
]

export default class Targets extends DbgateCommand {
  static override summary = 'List the database targets in the configuration.'
  static override description = 'Shows where each target connects and how its password is supplied, never the password itself.'
  static override examples = ['$ dbgate targets', '$ dbgate targets --config ./dbgate.yaml --json']
  static override enableJsonFlag = true
  static override flags = {config: configFlag}

  async run(): Promise<TargetSummary[]> {
    const {flags} = await this.parse(Targets)
    const {config} = await loadCommandConfig(flags, this)
    const targets = summarizeTargets(config)
    this.log(renderTable(targets, columns, {tty: Boolean(process.stdout.isTTY)}))
    return targets
  }
}
