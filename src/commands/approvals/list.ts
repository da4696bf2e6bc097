import {Flags} from '@oclif/core'
import {formatRequests, requestJson, reviewContextFrom} from '../../approvals/cli.js'
import {listForReviewer} from '../../approvals/review.js'
import {loadCommandConfig} from '../../cli/config.js'
import {configFlag} from '../../cli/flags.js'
import {DbgateCommand} from '../../cli/base-command.js'

export default class ApprovalsList extends DbgateCommand {
  static override summary = 'List approval requests you may decide.'
  static override description =
    'Shows pending requests on the targets whose reviewer groups you are in, newest first; your own requests are left out, since nobody decides their own. Use `dbgate approve` for the interactive view.'
  static override examples = ['$ dbgate approvals list', '$ dbgate approvals list --all --json']
  static override enableJsonFlag = true
  static override flags = {
    config: configFlag,
    all: Flags.boolean({summary: 'Include settled requests (approved, denied, expired, withdrawn) from the last 24 hours.'}),
  }

  async run(): Promise<Record<string, unknown>[]> {
    const {flags} = await this.parse(ApprovalsList)
    const loaded = await loadCommandConfig(flags, this)
    const ctx = await reviewContextFrom(loaded, process.env, (m) => this.logToStderr(`Warning: ${m}`))
    const views = await listForReviewer(ctx, {all: flags.all})
    if (views.length === 0) this.logToStderr(flags.all ? 'No approval requests in the last 24 hours.' : 'No pending approval requests for you.')
    else this.log(formatRequests(views, Boolean(process.stdout.isTTY)))
    return views.map(requestJson)
  }
}
