import {Args} from '@oclif/core'
import {loadCommandConfig} from '../../cli/config.js'
import {EXIT_FAILURE} from '../../cli/exit-codes.js'
import {configFlag} from '../../cli/flags.js'
import {renderTable, type Column} from '../../cli/table.js'
import {getTarget} from '../../config/targets.js'
import {upstreamTargetOf} from '../../connect/open.js'
import {requireTrustedTarget} from '../../config/trust.js'
import {describeTargetFailure} from '../../connect/target-errors.js'
import {catalogQueryFor} from '../../masking/catalog-query.js'
import {scanCatalog, type ScanFinding} from '../../masking/scan.js'
import {DbgateCommand} from '../../cli/base-command.js'

const columns: Column<ScanFinding>[] = [
  {header: 'TABLE', value: (f) => `${f.schema}.${f.table}`},
  {header: 'COLUMN', value: (f) => f.column},
  {header: 'TYPE', value: (f) => f.type},
  {header: 'CATEGORY', value: (f) => f.category},
  {header: 'STRATEGY', value: (f) => f.strategy},
  {header: 'REASON', value: (f) => f.reason},
]

export default class MaskingScan extends DbgateCommand {
  static override summary = "List the columns of a target that masking hides, and why."
  static override description =
    'Connects to the target directly (not through a tunnel), reads its catalog, and shows every column classified as sensitive: by its name, by its type, or by a mask: glob in dbgate.yaml, less the columns listed in unmaskColumns. Values are never read. Output columns derived from these (through expressions, views, whole rows) are masked too when results pass through a tunnel.'
  static override examples = ['$ dbgate masking scan prod', '$ dbgate masking scan prod --json']
  static override enableJsonFlag = true
  static override args = {target: Args.string({description: 'Target name from dbgate.yaml.', required: true})}
  static override flags = {config: configFlag}

  async run(): Promise<ScanFinding[]> {
    const {args, flags} = await this.parse(MaskingScan)
    const loaded = await loadCommandConfig(flags, this)
    const {config} = loaded
    const target = getTarget(config, args.target)
    await requireTrustedTarget(loaded, target)
    const query = catalogQueryFor(await upstreamTargetOf(target))
    let findings: ScanFinding[]
    try {
      findings = await scanCatalog(query, target.masking)
    } catch (error) {
      throw describeTargetFailure(target, error, loaded.path)
    } finally {
      await query.close()
    }
    if (findings.length === 0) this.log(`No sensitive columns found in ${target.database} on ${target.host}:${target.port}; the value scanner still checks every result.`)
    else this.log(renderTable(findings, columns, {tty: Boolean(process.stdout.isTTY)}))
    return findings
  }
}
