import {Flags} from '@oclif/core'
import {formatRequests, requestJson, reviewContextFrom} from '../../approvals/cli.js'
import {listForReviewer, listOwnRequests, notAReviewer} from '../../approvals/review.js'
import {loadCommandConfig} from '../../cli/config.js'
import {configFlag} from '../../cli/flags.js'
import {DbgateCommand} from '../../cli/base-command.js'
import {visible} from '../../util/visible.js'

export default class ApprovalsList extends DbgateCommand {
  static override summary = 'List approval requests you may decide.'
  static override description =
    'Shows pending requests on the targets whose reviewer groups you are in, newest first; your own requests are left out, since nobody decides their own (--mine lists them). Decide with `dbgate approve <id>` or `dbgate deny <id> --reason …`, or all of them in the interactive `dbgate approve`.'
  static override examples = ['$ dbgate approvals list', '$ dbgate approvals list --mine', '$ dbgate approvals list --all --json']
  static override enableJsonFlag = true
  static override flags = {
    config: configFlag,
    all: Flags.boolean({summary: 'Include settled requests (approved, denied, expired, withdrawn) from the last 24 hours.'}),
    mine: Flags.boolean({summary: 'Your own requests instead: what you are waiting for, and who decides it.'}),
  }

  async run(): Promise<Record<string, unknown>[]> {
    const {flags} = await this.parse(ApprovalsList)
    const loaded = await loadCommandConfig(flags, this)
    const ctx = await reviewContextFrom(loaded, process.env, (m) => this.warning(m), 'list')
    // A left-out record is named by its key, which whoever wrote the bucket chose.
    const onInvalid = (m: string) => this.warning(m)
    const views = flags.mine ? await listOwnRequests(ctx, {all: flags.all, onInvalid}) : await listForReviewer(ctx, {all: flags.all, onInvalid})
    const standing = flags.mine ? undefined : await notAReviewer(ctx)
    // It names the person and their groups from the token, and their requests' ids and targets from the bucket: text others chose.
    if (standing) this.logToStderr(visible(`${standing.message}\n${standing.nextStep}`, {lines: true}))
    else if (views.length === 0) this.logToStderr(flags.mine ? 'You have no pending approval requests.' : flags.all ? 'No approval requests in the last 24 hours.' : 'No pending approval requests for you.')
    else this.log(formatRequests(views, Boolean(process.stdout.isTTY)))
    return views.map(requestJson)
  }
}
