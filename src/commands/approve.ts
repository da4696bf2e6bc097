import {Args, Flags} from '@oclif/core'
import {reviewContextFrom} from '../approvals/cli.js'
import {APPROVAL_BAD_INPUT, APPROVAL_NOT_A_REVIEWER, ApprovalError} from '../approvals/errors.js'
import {confirmation, decide, notAReviewer} from '../approvals/review.js'
import {loadCommandConfig} from '../cli/config.js'
import {configFlag, digestFlag, durationFlag} from '../cli/flags.js'
import {DbgateCommand} from '../cli/base-command.js'

export default class Approve extends DbgateCommand {
  static override summary = 'Review statements waiting for approval, or approve one.'
  static override description = [
    'Without an id, on a terminal: an interactive list of pending requests you may decide, with the SQL, the rule that fired and what ran before it (a approve, asking for an optional reason; d deny; w window; / filter; q quit).',
    'With an id: approves that request at once; the waiting statement runs within a couple of seconds. Read it in full first with `dbgate approvals show <id>`, and pass the digest it prints (--digest) so that a request changed since is not decided. --window grants a time-boxed window for statements of the same class where the target allows it.',
    'Only a member of the target\'s reviewer groups can decide, never on their own request; the waiting tunnel verifies your sign-in before it acts.',
  ].join('\n\n')
  static override examples = ['$ dbgate approve', '$ dbgate approve apr-k3x9m2p7qa --reason "ticket OPS-42"', '$ dbgate approve apr-k3x9m2p7qa --digest 3f9c…  # exactly what `dbgate approvals show` printed', '$ dbgate approve apr-k3x9m2p7qa --window 30m']
  static override enableJsonFlag = true
  static override args = {id: Args.string({description: 'The approval id (apr-…), from the client\'s notice or `dbgate approvals list`.'})}
  static override flags = {
    config: configFlag,
    reason: Flags.string({char: 'r', summary: 'Why; recorded with the decision and shown to the requester.'}),
    window: durationFlag('Grant a window of this length (e.g. 30m, 1h30m) for the request\'s class of statement.', {char: 'w'}),
    digest: digestFlag,
  }

  async run(): Promise<{id: string; action: string; reviewer: string} | undefined> {
    const {args, flags} = await this.parse(Approve)
    const interactive = !args.id && !this.jsonEnabled() && Boolean(process.stdin.isTTY) && Boolean(process.stdout.isTTY)
    // Once the screen is up it owns the terminal: warnings go onto it, not over it.
    const warnings: string[] = []
    const warn = (m: string) => (interactive ? warnings.push(m) : this.warning(m))
    const ctx = await reviewContextFrom(await loadCommandConfig(flags, this), process.env, warn, 'decide')
    if (!args.id) {
      const standing = await notAReviewer(ctx)
      if (standing) throw new ApprovalError(APPROVAL_NOT_A_REVIEWER, standing.message, standing.nextStep)
      if (!interactive) {
        throw new ApprovalError(APPROVAL_BAD_INPUT, 'Name the request to approve: the interactive view needs a terminal.', 'Run `dbgate approvals list` to see pending requests, then `dbgate approve <id>`.')
      }
      // Loaded only here, so scripted approvals never pay for React and Ink.
      const {runApprovalsTui} = await import('../tui/approvals/run.js')
      await runApprovalsTui(ctx, warnings)
      return undefined
    }
    const windowMs = flags.window
    const result = await decide(ctx, {id: args.id, action: windowMs !== undefined ? 'window' : 'approve', reason: flags.reason, windowMs, ...(flags.digest ? {digest: flags.digest} : {})})
    this.log(confirmation(result))
    return {id: result.request.id, action: result.decision.action, reviewer: result.decision.reviewer.email ?? result.decision.reviewer.subject}
  }
}
