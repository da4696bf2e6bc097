import {Args} from '@oclif/core'
import {loadCommandConfig} from '../../cli/config.js'
import {EXIT_FAILURE} from '../../cli/exit-codes.js'
import {configFlag} from '../../cli/flags.js'
import {getTarget} from '../../config/targets.js'
import {lintRules, type LintIssue} from '../../policy/index.js'
import {DbgateCommand} from '../../cli/base-command.js'

export interface TargetLint {
  target: string
  issues: LintIssue[]
}

export default class PolicyLint extends DbgateCommand {
  static override summary = "Find rules that cannot do what they say: typos, shadowed rules, risky allows."
  static override description = 'Checks every target, or the one named. Exits 1 when any rule has an error (a rule that can never match).'
  static override examples = ['$ dbgate policy lint', '$ dbgate policy lint prod --json']
  static override enableJsonFlag = true
  static override args = {target: Args.string({description: 'Only this target.'})}
  static override flags = {config: configFlag}

  async run(): Promise<TargetLint[]> {
    const {args, flags} = await this.parse(PolicyLint)
    const {config} = await loadCommandConfig(flags, this)
    const targets = args.target ? [getTarget(config, args.target)] : Object.values(config.targets)
    const results = targets.map((t) => ({target: t.name, issues: lintRules(t.rules, t.policy)}))
    for (const r of results) {
      if (r.issues.length === 0) {
        this.log(`${r.target}: ok`)
        continue
      }
      for (const i of r.issues) this.log(`${r.target}: ${i.severity}: rule ${i.ruleId}: ${i.message}`)
    }
    if (results.some((r) => r.issues.some((i) => i.severity === 'error'))) process.exitCode = EXIT_FAILURE
    return results
  }
}
