import {readFile} from 'node:fs/promises'
import {resolve} from 'node:path'
import {Args, Flags} from '@oclif/core'
import {visible} from '../../util/visible.js'
import {DbgateCommand} from '../../cli/base-command.js'
import {renderTable, type Column} from '../../cli/table.js'
import {CONFIG_NOT_FOUND, CONFIG_UNREADABLE, ConfigError} from '../../config/errors.js'
import {parseConfigText} from '../../config/parse.js'
import {forgetConfigFile, personalSecretOf, readTrusts, sha256Of, trustConfigFile, trustFile} from '../../config/trust.js'
import type {DbgateConfig} from '../../config/types.js'

interface TrustedRow {
  path: string
  sha256: string
  trustedAt: string
  /** `trusted`, `changed` (needs trusting again) or `missing`. */
  state: string
}

const columns: Column<TrustedRow>[] = [
  {header: 'FILE', value: (r) => r.path},
  {header: 'STATE', value: (r) => r.state},
  {header: 'TRUSTED AT', value: (r) => r.trustedAt},
  {header: 'SHA-256', value: (r) => r.sha256.slice(0, 12)},
]

/** Where the file would send or seal the person's sign-in and their own passwords: what they are agreeing to. */
function whereSignInGoes(config: DbgateConfig): string[] {
  const lines: string[] = []
  const gw = config.gateway
  if (gw) lines.push(`  gateway: ${gw.address.host}:${gw.address.port} (API ${gw.api.host}:${gw.api.port})${gw.ca ? `, CA ${gw.ca}` : ''}: receives your sign-in`)
  for (const target of Object.values(config.targets)) {
    const secret = personalSecretOf(target)
    if (secret) lines.push(`  target ${target.name}: ${target.host}:${target.port} receives ${secret}`)
  }
  lines.push(`  bucket: ${config.bucket.url}: \`dbgate approve\` and \`deny\` seal your sign-in to requests found there`)
  if (config.identity) lines.push(`  identity: ${config.identity.issuer}`)
  return lines
}

export default class ConfigTrust extends DbgateCommand {
  static override summary = 'Trust a dbgate.yaml found in the current directory with your sign-in.'
  static override description = [
    'A ./dbgate.yaml is used wherever dbgate runs, and a repository you clone can carry one. Until you trust it, dbgate will not send your sign-in to the gateway it names (connect, targets, mcp), nor seal it to approval requests (approve, deny, and approvals list with a gateway), nor dial a target whose password it takes from your environment, files or keychain, or from your AWS credentials (connect, mcp, masking scan), nor send its identity provider a client secret of yours (identity.clientSecret from env:, file: or keychain:, or DBGATE_CLIENT_SECRET); policy check, lint, sessions, report, and a connect to a target whose password is written in the file, work as before.',
    'Trusting records the file\'s absolute path and the SHA-256 of its content in $XDG_STATE_HOME/dbgate/trusted-configs.json (only yours, mode 0600). Any change to the file needs trusting again. Files named with --config or DBGATE_CONFIG, and your own ~/.config/dbgate/config.yaml, need no trust, except for dbgate mcp, which an agent starts from its MCP configuration (.mcp.json), itself a file a repository can carry.',
  ].join('\n\n')
  static override examples = ['$ dbgate config trust', '$ dbgate config trust ./deploy/dbgate.yaml', '$ dbgate config trust --list', '$ dbgate config trust --forget']
  static override enableJsonFlag = true
  static override args = {path: Args.string({description: 'The file to trust (or forget).', default: './dbgate.yaml'})}
  static override flags = {
    list: Flags.boolean({summary: 'List the files you trusted, and whether each still matches.', exclusive: ['forget']}),
    forget: Flags.boolean({summary: 'Stop trusting the file.'}),
  }

  async run(): Promise<TrustedRow[] | {path: string; sha256?: string; forgotten?: boolean}> {
    const {args, flags} = await this.parse(ConfigTrust)
    if (flags.list) return this.list()
    const path = resolve(args.path)
    if (flags.forget) {
      const forgotten = await forgetConfigFile(path)
      this.log(forgotten ? `No longer trusted: ${path}` : `${path} was not trusted; nothing to forget.`)
      return {path, forgotten}
    }
    let text: string
    try {
      text = await readFile(path, 'utf8')
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ENOENT') throw new ConfigError(CONFIG_NOT_FOUND, `Config file ${path} does not exist`, {file: path, hint: 'Name the file to trust: dbgate config trust <path>.'})
      throw new ConfigError(CONFIG_UNREADABLE, `Cannot read config file ${path}: ${code ?? (err as Error).message}`, {file: path, hint: 'Point to the YAML file, and check that you may read it.'})
    }
    // A file that does not load is not trusted: what it names cannot be shown, and nothing could use it.
    const {config} = parseConfigText(text, path)
    const recorded = await trustConfigFile(path, text)
    // The names are the file's own words (an issuer, a bucket, a path): shown as text, so no escape
    // in them can erase or hide a line of what the person just trusted.
    this.log([`Trusted ${visible(path)} (sha256 ${recorded.sha256.slice(0, 12)}…) as it is now; any change needs \`dbgate config trust\` again. It names:`, ...whereSignInGoes(config).map((l) => visible(l))].join('\n'))
    return recorded
  }

  private async list(): Promise<TrustedRow[]> {
    const rows: TrustedRow[] = []
    for (const [path, record] of Object.entries(await readTrusts())) {
      const current = await readFile(path, 'utf8').then(sha256Of, () => undefined)
      rows.push({path, sha256: record.sha256, trustedAt: record.trustedAt, state: current === undefined ? 'missing' : current === record.sha256 ? 'trusted' : 'changed'})
    }
    if (rows.length === 0) this.logToStderr(`No trusted files (${trustFile()}).`)
    else this.log(renderTable(rows, columns, {tty: Boolean(process.stdout.isTTY)}))
    return rows
  }
}
