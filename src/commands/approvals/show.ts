import {Args} from '@oclif/core'
import {formatRequestDetail, requestJson, reviewContextFrom} from '../../approvals/cli.js'
import {APPROVAL_NOT_FOUND, ApprovalError} from '../../approvals/errors.js'
import {listForReviewer, listOwnRequests} from '../../approvals/review.js'
import {loadCommandConfig} from '../../cli/config.js'
import {configFlag} from '../../cli/flags.js'
import {DbgateCommand} from '../../cli/base-command.js'
import {visible} from '../../util/visible.js'

export default class ApprovalsShow extends DbgateCommand {
  static override summary = 'Show one approval request in full, with the digest a decision can be bound to.'
  static override description = [
    'Prints everything a reviewer reads of the request: requester, rule, the whole SQL with its line breaks and bound values (never cut, unlike the list), the session\'s settings, what ran before it in that session, its state, and its digest.',
    'Decide exactly what you read with `dbgate approve <id> --digest <digest>` (or `dbgate deny … --digest`): if the request changed in the bucket since, nothing is decided.',
    'Shows requests you may review, and your own.',
  ].join('\n\n')
  static override examples = ['$ dbgate approvals show apr-k3x9m2p7qa', '$ dbgate approvals show apr-k3x9m2p7qa --json']
  static override enableJsonFlag = true
  static override args = {id: Args.string({description: 'The approval id (apr-…), from the client\'s notice or `dbgate approvals list`.', required: true})}
  static override flags = {config: configFlag}

  async run(): Promise<Record<string, unknown>> {
    const {args, flags} = await this.parse(ApprovalsShow)
    const ctx = await reviewContextFrom(await loadCommandConfig(flags, this), process.env, (m) => this.warning(m), 'list')
    // The same checks as the list: a request the gateway did not file, or that is not valid, is not shown.
    const onInvalid = (m: string) => this.warning(m)
    const find = (views: Awaited<ReturnType<typeof listForReviewer>>) => views.find((v) => v.request.id === args.id)
    const view = find(await listForReviewer(ctx, {all: true, onInvalid})) ?? find(await listOwnRequests(ctx, {all: true, onInvalid}))
    if (!view) {
      throw new ApprovalError(APPROVAL_NOT_FOUND, `No approval request ${visible(args.id)} that you may review or made (pending, or settled in the last 24 hours) in ${ctx.bucket.url}.`, 'Run `dbgate approvals list` (or `--mine`) to see the requests you can read.')
    }
    this.log(formatRequestDetail(view))
    return requestJson(view)
  }
}
