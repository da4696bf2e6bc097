import {render} from 'ink'
import {ApprovalError} from '../../approvals/errors.js'
import {confirmation, decide, listForReviewer, type ReviewContext} from '../../approvals/review.js'
import {identityLabel} from '../../identity/types.js'
import {ApprovalsApp} from './App.js'
import {loadParser} from '../../sql/parser.js'
import type {ApprovalsSource} from './state.js'

/** The data side of the screen: the same core functions `approvals list`, `approve` and `deny` call. */
export function reviewSource(ctx: ReviewContext, warnings: string[] = []): ApprovalsSource {
  // The list is read again every few seconds: a request left out (planted, unreadable) is told once.
  const told = new Set<string>()
  const onInvalid = (message: string) => {
    if (told.has(message)) return
    told.add(message)
    warnings.push(message)
  }
  return {
    load: () => listForReviewer(ctx, {onInvalid}),
    takeWarnings: () => warnings.splice(0),
    decide: async (input) => {
      try {
        return confirmation(await decide(ctx, input))
      } catch (e) {
        // The screen has one line for the outcome: keep the next step on it.
        if (e instanceof ApprovalError && e.nextStep) throw new Error(`${e.message} ${e.nextStep}`)
        throw e
      }
    },
  }
}

/**
 * Runs the interactive screen until the reviewer quits. `warnings` is where the caller's warnings
 * go while the screen is up (renewing a sign-in may store tokens in a file): shown on the screen.
 */
export async function runApprovalsTui(ctx: ReviewContext, warnings: string[] = []): Promise<void> {
  // The SQL is coloured by PostgreSQL's own scanner; without it, it is shown with no colour.
  await loadParser().catch((e: Error) => warnings.push(`the SQL parser could not be loaded, so statements are shown without colour: ${e.message}`))
  const app = render(<ApprovalsApp source={reviewSource(ctx, warnings)} reviewer={identityLabel(ctx.reviewer.identity)} />, {exitOnCtrlC: true})
  await app.waitUntilExit()
}
