import {render} from 'ink'
import {ApprovalError} from '../../approvals/errors.js'
import {confirmation, decide, listForReviewer, type ReviewContext} from '../../approvals/review.js'
import {identityLabel} from '../../identity/types.js'
import {ApprovalsApp} from './App.js'
import type {ApprovalsSource} from './state.js'

/** The data side of the screen: the same core functions `approvals list`, `approve` and `deny` call. */
export function reviewSource(ctx: ReviewContext, warnings: string[] = []): ApprovalsSource {
  return {
    load: () => listForReviewer(ctx),
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
  const app = render(<ApprovalsApp source={reviewSource(ctx, warnings)} reviewer={identityLabel(ctx.reviewer.identity)} />, {exitOnCtrlC: true})
  await app.waitUntilExit()
}
