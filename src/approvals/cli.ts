/**
 * What `dbgate approve`, `deny` and `approvals list` share apart from oclif: signing the reviewer
 * in, the list's columns, and error mapping. The command files only parse flags and call these.
 */
import {Errors} from '@oclif/core'
import {renderTable, type Column} from '../cli/table.js'
import {EXIT_USAGE} from '../cli/exit-codes.js'
import {openBucket, type Bucket} from '../bucket/index.js'
import type {LoadedConfig} from '../config/types.js'
import {EXIT_AUTH, identityConfigFrom} from '../identity/cli.js'
import {getIdentity} from '../identity/session.js'
import {openTokenStore} from '../identity/token-store.js'
import {APPROVAL_BAD_INPUT, APPROVAL_NOT_A_REVIEWER, APPROVAL_NO_FRESH_TOKEN, APPROVAL_SELF, ApprovalError} from './errors.js'
import {requestRow, type RequestRow} from './format.js'
import {reviewerFromSession, type ReviewContext} from './review.js'
import type {RequestView} from './types.js'

/** Signs the reviewer in (stored login, refreshed if needed) and opens the configured bucket. */
export async function reviewContextFrom(loaded: LoadedConfig, env: NodeJS.ProcessEnv, warn: (m: string) => void): Promise<ReviewContext & {bucket: Bucket}> {
  const config = await identityConfigFrom(loaded, env)
  const session = await getIdentity(config, {env, warn, store: openTokenStore({env, warn})})
  return {bucket: openBucket(loaded.config.bucket), config: loaded.config, reviewer: reviewerFromSession(session)}
}

export const REQUEST_COLUMNS: Column<RequestRow>[] = [
  {header: 'ID', value: (r) => r.id},
  {header: 'REQUESTER', value: (r) => r.requester},
  {header: 'TARGET', value: (r) => r.target},
  {header: 'CLASS', value: (r) => r.class},
  {header: 'AGE', value: (r) => r.age},
  {header: 'LEFT', value: (r) => r.left},
  {header: 'STATE', value: (r) => r.state},
  {header: 'SQL', value: (r) => (r.sql.length > 60 ? `${r.sql.slice(0, 59)}…` : r.sql)},
]

export function formatRequests(views: RequestView[], tty: boolean, now = new Date()): string {
  return renderTable(views.map((v) => requestRow(v, now)), REQUEST_COLUMNS, {tty})
}

/** The JSON shape of a listed request: the request without its seal key, plus its state. */
export function requestJson(v: RequestView): Record<string, unknown> {
  const {sealKey: _key, ...request} = v.request
  return {...request, state: v.state, ...(v.decision ? {decision: {action: v.decision.action, reviewer: v.decision.reviewer, reason: v.decision.reason, decidedAt: v.decision.decidedAt}} : {}), ...(v.outcome ? {outcome: v.outcome} : {})}
}

/** An ApprovalError as an oclif error: refusals of authority exit 4 like other auth failures, bad input 2. */
export function approvalCliError(err: unknown): unknown {
  if (!(err instanceof ApprovalError)) return err
  const exit = err.code === APPROVAL_BAD_INPUT ? EXIT_USAGE : [APPROVAL_NOT_A_REVIEWER, APPROVAL_SELF, APPROVAL_NO_FRESH_TOKEN].includes(err.code) ? EXIT_AUTH : 1
  const e = Object.assign(new Errors.CLIError(err.message, {exit, code: err.code}), {exitCode: exit})
  if (err.nextStep) e.suggestions = [err.nextStep]
  return e
}
