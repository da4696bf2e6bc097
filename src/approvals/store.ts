/**
 * Approval records in the bucket. Layout under `approvals/`:
 *   requests/<id>.json    the request, written once by the waiting tunnel
 *   decisions/<id>.json   the first reviewer's decision, create-exclusive
 *   outcomes/<id>.json    how the tunnel settled it (approved, denied, expired, withdrawn, …)
 *   rejected/<id>/<ts>.json  decisions the tunnel refused, moved aside so a real reviewer can still decide
 *   windows/<id>.json     windows the tunnel verified, for people to see
 */
import {canonicalJson} from '../util/canonical-json.js'
import {createHash, randomBytes} from 'node:crypto'
import {isBucketError, OBJECT_EXISTS, OBJECT_NOT_FOUND, type Bucket} from '../bucket/index.js'
import type {ApprovalDecision, ApprovalOutcome, ApprovalRequest, ApprovalWindow, RequestView} from './types.js'

export const requestKey = (id: string) => `approvals/requests/${id}.json`
export const decisionKey = (id: string) => `approvals/decisions/${id}.json`
export const outcomeKey = (id: string) => `approvals/outcomes/${id}.json`
export const windowKey = (id: string) => `approvals/windows/${id}.json`
export const rejectedKey = (id: string, at: Date) => `approvals/rejected/${id}/${at.toISOString().replace(/[:.]/g, '-')}.json`

const ID_ALPHABET = 'abcdefghijkmnpqrstuvwxyz23456789'

/** Short enough to type after `dbgate approve`, random enough (50 bits) that ids never collide. */
export function newApprovalId(): string {
  const bytes = randomBytes(10)
  let id = ''
  for (const b of bytes) id += ID_ALPHABET[b % ID_ALPHABET.length]
  return `apr-${id}`
}

export function isApprovalId(id: string): boolean {
  return /^apr-[a-z0-9]{4,32}$/.test(id)
}


export function requestDigest(req: ApprovalRequest): string {
  return createHash('sha256').update(canonicalJson(req)).digest('hex')
}

async function getJson<T>(bucket: Bucket, key: string): Promise<T | undefined> {
  try {
    const {body} = await bucket.get(key)
    return JSON.parse(body.toString('utf8')) as T
  } catch (e) {
    if (isBucketError(e, OBJECT_NOT_FOUND)) return undefined
    throw e
  }
}

const json = (v: unknown) => JSON.stringify(v, null, 2) + '\n'

export async function writeRequest(bucket: Bucket, req: ApprovalRequest): Promise<void> {
  await bucket.put(requestKey(req.id), json(req), {ifNoneMatch: true, contentType: 'application/json'})
}

export const readRequest = (bucket: Bucket, id: string) => getJson<ApprovalRequest>(bucket, requestKey(id))
export const readDecision = (bucket: Bucket, id: string) => getJson<ApprovalDecision>(bucket, decisionKey(id))
export const readOutcome = (bucket: Bucket, id: string) => getJson<ApprovalOutcome>(bucket, outcomeKey(id))

/** A cheap existence check first: the tunnel polls every second and most polls find nothing. */
export async function pollDecision(bucket: Bucket, id: string): Promise<ApprovalDecision | undefined> {
  if (!(await bucket.head(decisionKey(id)))) return undefined
  return readDecision(bucket, id)
}

export type WriteDecisionResult = {won: true} | {won: false; winner: ApprovalDecision | undefined}

/** Create-exclusive: of two reviewers deciding at once, exactly one wins; the other learns who did. */
export async function writeDecision(bucket: Bucket, decision: ApprovalDecision): Promise<WriteDecisionResult> {
  try {
    await bucket.put(decisionKey(decision.requestId), json(decision), {ifNoneMatch: true, contentType: 'application/json'})
    return {won: true}
  } catch (e) {
    if (!isBucketError(e, OBJECT_EXISTS)) throw e
    return {won: false, winner: await readDecision(bucket, decision.requestId)}
  }
}

export async function writeOutcome(bucket: Bucket, outcome: ApprovalOutcome): Promise<void> {
  await bucket.put(outcomeKey(outcome.requestId), json(outcome), {contentType: 'application/json'})
}

export async function writeWindow(bucket: Bucket, window: ApprovalWindow): Promise<void> {
  await bucket.put(windowKey(window.requestId), json(window), {contentType: 'application/json'})
}

/**
 * Keeps a refused decision as evidence and frees the slot, so a forged or unauthorised decision
 * cannot block the request for the reviewers who may decide it.
 */
export async function moveAside(bucket: Bucket, id: string, raw: unknown, problem: string, at: Date): Promise<void> {
  await bucket.put(rejectedKey(id, at), json({problem, at: at.toISOString(), decision: raw}), {contentType: 'application/json'})
  await bucket.delete(decisionKey(id))
}

export function stateOf(req: ApprovalRequest, decision: ApprovalDecision | undefined, outcome: ApprovalOutcome | undefined, now: Date): RequestView['state'] {
  if (outcome) return outcome.state
  if (decision) return 'decided'
  // A tunnel that died while waiting never writes an outcome; its request lapses on its own.
  if (Date.parse(req.expiresAt) <= now.getTime()) return 'expired'
  return 'pending'
}

export interface ListOptions {
  now?: Date
  /** Only requests created after this (default: the last 24 hours). */
  since?: Date
}

/** Every request with its state, newest first. */
export async function listRequests(bucket: Bucket, opts: ListOptions = {}): Promise<RequestView[]> {
  const now = opts.now ?? new Date()
  const since = opts.since ?? new Date(now.getTime() - 24 * 3600_000)
  const [requests, decided, settled] = await Promise.all([collect(bucket, 'approvals/requests/', since), names(bucket, 'approvals/decisions/'), names(bucket, 'approvals/outcomes/')])
  const views = await Promise.all(
    requests.map(async (id): Promise<RequestView | undefined> => {
      const request = await readRequest(bucket, id).catch(() => undefined)
      if (!request || request.v !== 1 || request.id !== id) return undefined
      const [decision, outcome] = await Promise.all([decided.has(id) ? readDecision(bucket, id) : undefined, settled.has(id) ? readOutcome(bucket, id) : undefined])
      return {request, decision, outcome, state: stateOf(request, decision, outcome, now)}
    }),
  )
  return views.filter((v): v is RequestView => v !== undefined).sort((a, b) => b.request.createdAt.localeCompare(a.request.createdAt))
}

const idOf = (key: string) => key.slice(key.lastIndexOf('/') + 1).replace(/\.json$/, '')

async function collect(bucket: Bucket, prefix: string, since: Date): Promise<string[]> {
  const out: string[] = []
  for await (const o of bucket.list(prefix)) if (o.key.endsWith('.json') && o.lastModified >= since) out.push(idOf(o.key))
  return out
}

async function names(bucket: Bucket, prefix: string): Promise<Set<string>> {
  const out = new Set<string>()
  for await (const o of bucket.list(prefix)) if (o.key.endsWith('.json')) out.add(idOf(o.key))
  return out
}
