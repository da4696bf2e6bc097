import {Args, Flags} from '@oclif/core'
import {reviewContextFrom} from '../approvals/cli.js'
import {confirmation, decide} from '../approvals/review.js'
import {loadCommandConfig} from '../cli/config.js'
import {configFlag, digestFlag} from '../cli/flags.js'
import {DbgateCommand} from '../cli/base-command.js'

export default class Deny extends DbgateCommand {
  static override summary = 'Deny a statement waiting for approval.'
  static override description = 'The waiting client gets an error naming you and your reason. Only a member of the target\'s reviewer groups can deny, and never their own request.'
  static override examples = ['$ dbgate deny apr-k3x9m2p7qa --reason "not during the sale; after 18:00"']
  static override enableJsonFlag = true
  static override args = {id: Args.string({description: 'The approval id (apr-…), from the client\'s notice or `dbgate approvals list`.', required: true})}
  static override flags = {
    config: configFlag,
    reason: Flags.string({char: 'r', summary: 'Why; the requester sees it.', required: true}),
    digest: digestFlag,
  }

  async run(): Promise<{id: string; action: string; reviewer: string}> {
    const {args, flags} = await this.parse(Deny)
    const ctx = await reviewContextFrom(await loadCommandConfig(flags, this), process.env, (m) => this.warning(m), 'decide')
    const result = await decide(ctx, {id: args.id, action: 'deny', reason: flags.reason, ...(flags.digest ? {digest: flags.digest} : {})})
    this.log(confirmation(result))
    return {id: result.request.id, action: 'deny', reviewer: result.decision.reviewer.email ?? result.decision.reviewer.subject}
  }
}
