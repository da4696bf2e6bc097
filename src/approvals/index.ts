/** Approvals' public surface: the tunnel's gate, the reviewer's side, and the bucket records. */
export * from './types.js'
export * from './errors.js'
export {createApprovalGate, type ApprovalGate, type ApprovalGateOptions} from './gate.js'
export {decide, listForReviewer, listOwnRequests, notAReviewer, mayReview, reviewerFromSession, confirmation, describeWinner, type Reviewer, type ReviewContext, type DecideInput, type DecideResult} from './review.js'
export {verifyDecision, type VerifiedDecision, type DecisionCheck} from './verify.js'
export {listRequests, readRequest, readDecision, readOutcome, requestDigest, newApprovalId, isApprovalId} from './store.js'
export {notifyWebhook} from './webhook.js'
export {shortDuration} from './format.js'
