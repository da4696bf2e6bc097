/**
 * What `dbgate approve`, `deny` and `approvals list` share apart from oclif: signing the reviewer
 * in and the list's columns. The command files only parse flags and call these.
 */
import {renderTable, type Column} from '../cli/table.js'
import {openBucket, type Bucket} from '../bucket/index.js'
import {requireTrustedConfig} from '../config/trust.js'
import type {LoadedConfig} from '../config/types.js'
import {identityConfigFrom} from '../identity/cli.js'
import {getIdentity} from '../identity/session.js'
import {openTokenStore} from '../identity/token-store.js'
import {cachedFor} from '../util/cached-for.js'
import {visible, visibleDeep} from '../util/visible.js'
import {agentLabel} from '../identity/types.js'
import {boundValues, heldLines, oneLineSql, recentMark, requestRow, settingsLine, shortDuration, type RequestRow} from './format.js'
import {reviewerFromSession, type ReviewContext} from './review.js'
import {requestDigest} from './store.js'
import {requesterLabel, type RequestView} from './types.js'

/**
 * Signs the reviewer in (stored login, refreshed if needed) and opens the configured bucket. A
 * decision seals the reviewer's fresh token to requests in that bucket, and listing checks requests
 * against the certificate of the gateway the file names: both need a file the reviewer chose
 * (src/config/trust.ts), checked before anyone is signed in or asked for a certificate.
 */
export async function reviewContextFrom(loaded: LoadedConfig, env: NodeJS.ProcessEnv, warn: (m: string) => void, purpose: 'decide' | 'list'): Promise<ReviewContext & {bucket: Bucket}> {
  if (purpose === 'decide' || loaded.config.gateway) await requireTrustedConfig(loaded, 'review', env)
  const config = await identityConfigFrom(loaded, env)
  const session = await getIdentity(config, {env, warn, store: openTokenStore({env, warn})})
  const gw = loaded.config.gateway
  return {bucket: openBucket(loaded.config.bucket), config: loaded.config, reviewer: reviewerFromSession(session), ...(gw ? {gatewayCertificate: cachedFor(CERTIFICATE_TTL_MS, async () => (await import('../gateway/client.js')).gatewayCertificate(gw))} : {})}
}

/** How long a long-running `dbgate approve` reuses the gateway's certificate before asking again. */
const CERTIFICATE_TTL_MS = 60_000

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

/**
 * The JSON shape of a listed request: the request without its seal key, plus its state and the
 * digest a decision is bound to (`dbgate approve <id> --digest`).
 */
export function requestJson(v: RequestView): Record<string, unknown> {
  const {sealKey: _key, ...request} = v.request
  return {...request, state: v.state, digest: requestDigest(v.request), ...(v.decision ? {decision: {action: v.decision.action, reviewer: v.decision.reviewer, reason: v.decision.reason, decidedAt: v.decision.decidedAt}} : {}), ...(v.outcome ? {outcome: v.outcome} : {})}
}

/**
 * Everything a reviewer reads of one request, as plain text for `dbgate approvals show`: the whole
 * SQL with its line breaks and bound values (never cut), the session's settings, what ran before,
 * and the digest that `dbgate approve <id> --digest` binds a decision to. Every string the request
 * holds is made visible: no escape sequence or bidi control in it acts on the terminal.
 */
export function formatRequestDetail(view: RequestView, now = new Date()): string {
  const r = visibleDeep(view.request)
  const digest = requestDigest(view.request)
  const lines: string[] = []
  lines.push(`${r.id} · ${requesterLabel(r.requester)} (${r.requester.groups.join(', ') || 'no groups'}) on ${r.target}/${r.database}`)
  if (r.agent) lines.push(`AI agent ${agentLabel(r.agent)} acting for ${requesterLabel(r.requester)}: the statement was written by the agent`)
  lines.push(`rule ${r.ruleId}: ${r.reason}`)
  lines.push(...heldLines(r))
  const left = view.state === 'pending' ? ` · expires in ${shortDuration(Date.parse(r.expiresAt) - now.getTime())}` : ''
  lines.push(`${r.class} · asked ${shortDuration(now.getTime() - Date.parse(r.createdAt))} ago${left} · ${view.state} · reviewers ${r.reviewers.join(', ')}${r.windows ? ' · windows allowed' : ''}`)
  if (view.decision) lines.push(`decided: ${view.decision.action} by ${visible(view.decision.reviewer.email ?? view.decision.reviewer.subject)}${view.decision.reason ? ` (${visible(view.decision.reason)})` : ''}`)
  if (r.settings && Object.keys(r.settings).length > 0) lines.push(`session settings: ${settingsLine(r.settings)}`)
  const sql = visible(view.request.sql, {lines: true})
  const count = r.statements.length || 1
  lines.push(`${count} statement${count > 1 ? 's' : ''}${r.statements.length ? `: ${r.statements.map((s) => s.command).join('; ')}` : ''} · ${sql.split('\n').length} line(s)${r.params ? ` · ${r.params.length} bound value(s)` : ''}`)
  lines.push('', sql)
  if (view.request.params) lines.push(`with the values ${boundValues(view.request.params, view.request.paramTypes)}`)
  for (const t of view.request.temporary ?? [])
    lines.push('', `where ${visible(t.name)} is a temporary ${visible(t.kind)} of this session${t.definition ? ':' : ', not the one of the same name in a schema'}`, ...(t.definition ? [visible(t.definition, {lines: true})] : []))
  for (const p of view.request.prepared ?? []) lines.push('', `where ${visible(p.name)} is the prepared statement:`, visible(p.sql, {lines: true}))
  if (r.recent.length > 0) {
    lines.push('', 'Earlier in this session:')
    for (const s of view.request.recent) lines.push(`  ${recentMark(s)} ${oneLineSql(s.sql, 100)}`)
  }
  lines.push('', `digest ${digest}`)
  if (view.state === 'pending') lines.push(`Decide exactly what is shown here: dbgate approve ${r.id} --digest ${digest} (or dbgate deny ${r.id} --digest ${digest} --reason "…")`)
  return lines.join('\n')
}
