import {loadCommandConfig} from '../cli/config.js'
import {configFlag} from '../cli/flags.js'
import {renderTable, type Column} from '../cli/table.js'
import {summarizeTargets, type TargetSummary} from '../config/targets.js'
import {DbgateCommand} from '../cli/base-command.js'
import {listGatewayTargets} from '../gateway/client.js'
import {visible} from '../util/visible.js'

const columns: Column<TargetSummary>[] = [
  {header: 'NAME', value: (t) => t.name},
  {header: 'ADDRESS', value: (t) => `${t.host}:${t.port}`},
  {header: 'DATABASE', value: (t) => t.database},
  {header: 'USER', value: (t) => t.user},
  {header: 'TLS', value: (t) => t.tls},
  {header: 'PASSWORD', value: (t) => t.passwordSource ?? 'none'},
  {header: 'ALLOW', value: (t) => (t.allow ? t.allow.join(',') : 'any')},
]

interface GatewayTargetRow {
  name: string
  gateway: string
}

const gatewayColumns: Column<GatewayTargetRow>[] = [
  {header: 'NAME', value: (t) => t.name},
  {header: 'GATEWAY', value: (t) => t.gateway},
]

export default class Targets extends DbgateCommand {
  static override summary = 'List the database targets in the configuration.'
  static override description = 'Shows where each target connects and how its password is supplied, never the password itself. When the configuration names a gateway, asks the gateway which targets you may use.'
  static override examples = ['$ dbgate targets', '$ dbgate targets --config ./dbgate.yaml --json']
  static override enableJsonFlag = true
  static override flags = {config: configFlag}

  async run(): Promise<TargetSummary[] | GatewayTargetRow[]> {
    const {flags} = await this.parse(Targets)
    const loaded = await loadCommandConfig(flags, this)
    const {config} = loaded
    if (config.gateway) {
      // The gateway holds the targets: ask it which ones this identity may use.
      const gw = config.gateway
      const answer = await listGatewayTargets(loaded, gw)
      const rows = answer.targets.map((t) => ({name: t.name, gateway: `${gw.address.host}:${gw.address.port}`}))
      this.log(renderTable(rows, gatewayColumns, {tty: Boolean(process.stdout.isTTY)}))
      // The label is the gateway's answer, from the token's e-mail or subject: text others chose.
      if (rows.length === 0) this.logToStderr(`The gateway lets ${visible(String(answer.identity))} use no targets.`)
      return rows
    }
    const targets = summarizeTargets(config)
    this.log(renderTable(targets, columns, {tty: Boolean(process.stdout.isTTY)}))
    return targets
  }
}
