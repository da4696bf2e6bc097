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
import {requestRow, type RequestRow} from './format.js'
import {reviewerFromSession, type ReviewContext} from './review.js'
import type {RequestView} from './types.js'

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

/** The JSON shape of a listed request: the request without its seal key, plus its state. */
export function requestJson(v: RequestView): Record<string, unknown> {
  const {sealKey: _key, ...request} = v.request
  return {...request, state: v.state, ...(v.decision ? {decision: {action: v.decision.action, reviewer: v.decision.reviewer, reason: v.decision.reason, decidedAt: v.decision.decidedAt}} : {}), ...(v.outcome ? {outcome: v.outcome} : {})}
}
