import {readFile} from 'node:fs/promises'
import {Args, Flags} from '@oclif/core'
import {loadCommandConfig} from '../../cli/config.js'
import {UsageError} from '../../cli/errors.js'
import {EXIT_FAILURE} from '../../cli/exit-codes.js'
import {configFlag} from '../../cli/flags.js'
import {getTarget} from '../../config/targets.js'
import {DEFAULT_MCP} from '../../config/schema.js'
import {checkPolicy, type CheckResult} from '../../policy/index.js'
import {loadParser} from '../../sql/parser.js'
import {DbgateCommand} from '../../cli/base-command.js'

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}

export default class PolicyCheck extends DbgateCommand {
  static override summary = "Show how a target's policy judges some SQL, without connecting."
  static override description =
    'Parses the SQL with the PostgreSQL parser, classifies every statement and applies the target\'s rules and built-in pack, as the tunnel would. ' +
    'Exits 0 when everything would run (allowed or warned), 1 when something would be denied or held for approval.'
  static override examples = [
    `$ dbgate policy check prod --sql "DELETE FROM users"`,
    '$ dbgate policy check prod --file migrations/042.sql --group dba',
    `$ dbgate policy check prod --client mcp --sql "UPDATE orders SET status = 'x' WHERE id = 1"`,
    '$ git diff --name-only | grep .sql | xargs cat | dbgate policy check prod --json',
  ]
  static override enableJsonFlag = true
  static override args = {target: Args.string({description: 'Target name from dbgate.yaml.', required: true})}
  static override flags = {
    config: configFlag,
    sql: Flags.string({char: 'e', summary: 'SQL text to check.', exclusive: ['file'], helpValue: '<sql>'}),
    file: Flags.string({char: 'f', summary: 'File of SQL to check (- for stdin).', exclusive: ['sql'], helpValue: '<path>'}),
    group: Flags.string({char: 'g', summary: 'Judge as an identity in this group (repeatable).', multiple: true, helpValue: '<group>'}),
    client: Flags.string({summary: "Judge as a session of this client: mcp (an AI agent through `dbgate mcp`, in the target's mcp.mode) or connect.", options: ['connect', 'mcp'], default: 'connect', helpValue: '<client>'}),
  }

  async run(): Promise<CheckResult> {
    const {args, flags} = await this.parse(PolicyCheck)
    const {config} = await loadCommandConfig(flags, this)
    const target = getTarget(config, args.target)
    let sql: string
    if (flags.sql !== undefined) sql = flags.sql
    else if (flags.file !== undefined && flags.file !== '-') sql = await readFile(flags.file, 'utf8')
    else if (flags.file === '-' || !process.stdin.isTTY) sql = await readStdin()
    else throw new UsageError('no SQL to check', 'pass --sql "<sql>", --file <path>, or pipe SQL on stdin')
    await loadParser()
    const result = checkPolicy(sql, {
      rules: target.rules,
      pack: target.policy,
      groups: flags.group ?? [],
      maxStatementSize: target.tunnel.maxStatementSize,
      client: flags.client === 'mcp' ? 'mcp' : 'connect',
      readOnly: flags.client === 'mcp' && (target.mcp ?? DEFAULT_MCP).mode === 'read-only',
    })
    this.log(result.report)
    if (result.decision.action === 'deny' || result.decision.action === 'require_approval') process.exitCode = EXIT_FAILURE
    return result
  }
}
