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
import {DocumentError, parseDocument} from '../util/document.js'
import {visible} from '../util/visible.js'
import {mapBounded} from '../util/bounded.js'
import type {z} from 'zod'
import {ApprovalDecisionSchema, ApprovalOutcomeSchema, ApprovalRequestSchema, type ApprovalDecision, type ApprovalOutcome, type ApprovalRequest, type ApprovalWindow, type RequestView} from './types.js'

export const requestKey = (id: string) => `approvals/requests/${id}.json`
export const decisionKey = (id: string) => `approvals/decisions/${id}.json`
export const outcomeKey = (id: string) => `approvals/outcomes/${id}.json`
export const windowKey = (id: string) => `approvals/windows/${id}.json`
export const rejectedKey = (id: string, at: Date) => `approvals/rejected/${id}/${at.toISOString().replace(/[:.]/g, '-')}.json`

const ID_ALPHABET = 'abcdefghijkmnpqrstuvwxyz23456789'

/**
 * The largest request a reviewer's list reads. A tunnel's request holds a statement of at most
 * `tunnel.maxStatementSize` (1 MiB by default) twice and values cut to 2,048 bytes each; a file far
 * larger was put there by someone who writes the bucket, and every reviewer's list (re-read every
 * two seconds) would hold it in memory and draw it. Left out, unread, with a warning.
 */
export const MAX_REQUEST_BYTES = 16 * 1024 * 1024

/**
 * The largest decision the waiting tunnel reads: a real one is a sealed ID token and a reason, a
 * few kilobytes. A larger file is refused unread (and not copied into rejected/), so a bucket
 * writer cannot have a tunnel, or a gateway worker, read a gigabyte once a second.
 */
export const MAX_DECISION_BYTES = 256 * 1024

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

async function getText(bucket: Bucket, key: string): Promise<string | undefined> {
  try {
    return (await bucket.get(key)).body.toString('utf8')
  } catch (e) {
    if (isBucketError(e, OBJECT_NOT_FOUND)) return undefined
    throw e
  }
}

/** The record at `key` checked against its schema; undefined if there is none, a DocumentError if it is not valid. */
async function getDocument<S extends z.ZodType>(bucket: Bucket, key: string, schema: S, what: string): Promise<z.infer<S> | undefined> {
  const text = await getText(bucket, key)
  return text === undefined ? undefined : parseDocument(schema, text, `${what} ${key}`)
}

const json = (v: unknown) => JSON.stringify(v, null, 2) + '\n'

/** The bytes a request takes in the bucket: over `MAX_REQUEST_BYTES`, reviewers' lists leave it out unread. */
export function requestBytes(req: ApprovalRequest): number {
  return Buffer.byteLength(json(req))
}

export async function writeRequest(bucket: Bucket, req: ApprovalRequest): Promise<void> {
  await bucket.put(requestKey(req.id), json(req), {ifNoneMatch: true, contentType: 'application/json'})
}

export const readRequest = (bucket: Bucket, id: string): Promise<ApprovalRequest | undefined> => getDocument(bucket, requestKey(id), ApprovalRequestSchema, 'approval request')
export const readDecision = (bucket: Bucket, id: string): Promise<ApprovalDecision | undefined> => getDocument(bucket, decisionKey(id), ApprovalDecisionSchema, 'approval decision')
export const readOutcome = (bucket: Bucket, id: string): Promise<ApprovalOutcome | undefined> => getDocument(bucket, outcomeKey(id), ApprovalOutcomeSchema, 'approval outcome')

/**
 * The decision as written, unchecked: the waiting tunnel checks it (verifyDecision) and moves a
 * refused one aside as evidence. A body that is not JSON comes back as its text, which no check
 * accepts, so it is refused and moved aside like any other. A cheap existence check comes first:
 * the tunnel polls every second and most polls find nothing.
 */
export async function pollDecision(bucket: Bucket, id: string): Promise<unknown> {
  const info = await bucket.head(decisionKey(id))
  if (!info) return undefined
  // Refused unread: its size is all that is kept of it as evidence.
  if (info.size > MAX_DECISION_BYTES) return new OversizedDecision(info.size)
  const text = await getText(bucket, decisionKey(id))
  if (text === undefined) return undefined
  try {
    return JSON.parse(text) as unknown
  } catch {
    return text
  }
}

/** A decision file too large to be one, which pollDecision did not read. */
export class OversizedDecision {
  constructor(readonly size: number) {}

  get problem(): string {
    return `it is a file of ${this.size} bytes, larger than any decision (${MAX_DECISION_BYTES} bytes at most), so it was not read`
  }
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

/** Requests read at once by a list (each with its decision and outcome). */
const LIST_READS_AT_ONCE = 16

export interface ListOptions {
  now?: Date
  /** Only requests created after this (default: the last 24 hours). */
  since?: Date
  /** Told of each record that is not valid (which, which field, what was expected); it is left out. */
  onInvalid?: (message: string) => void
}

/** Every request with its state, newest first. */
export async function listRequests(bucket: Bucket, opts: ListOptions = {}): Promise<RequestView[]> {
  const now = opts.now ?? new Date()
  const since = opts.since ?? new Date(now.getTime() - 24 * 3600_000)
  const [listed, decided, settled] = await Promise.all([collect(bucket, 'approvals/requests/', since), names(bucket, 'approvals/decisions/'), names(bucket, 'approvals/outcomes/')])
  const requests = listed.filter(({id, size}) => {
    if (size <= MAX_REQUEST_BYTES) return true
    opts.onInvalid?.(`approval request ${visible(requestKey(id))} is ${size} bytes, larger than any request a tunnel files (${MAX_REQUEST_BYTES} bytes at most); left out, unread`)
    return false
  })
  // A few reads at a time: the bucket's writers decide how many requests there are.
  const views = await mapBounded(requests, LIST_READS_AT_ONCE, async ({id}): Promise<RequestView | undefined> => {
    // A record that is not valid is left out of the list (nothing in it can be shown as true), and said so.
    const leftOut = (e: unknown) => {
      // One that could not be read (the store failed) is left out too, never silently.
      opts.onInvalid?.(e instanceof DocumentError ? `${visible(e.message)}; left out` : `approval record for ${visible(id)} could not be read (${visible((e as Error).message)}); left out, shown again once it can be read`)
      return undefined
    }
    const request = await readRequest(bucket, id).catch(leftOut)
    if (!request) return undefined
    // A copy of another request under this name would be decided as that other one: said, and left out.
    if (request.id !== id) return void opts.onInvalid?.(`approval request ${visible(requestKey(id))} holds another request (${request.id}), which deciding it would decide; left out`)
    // A decision or an outcome is a few kilobytes: one far larger is left out unread, and said so.
    const small = (names: Map<string, number>, key: string, what: string) => {
      const size = names.get(id)
      if (size === undefined) return false
      if (size <= MAX_DECISION_BYTES) return true
      opts.onInvalid?.(`approval ${what} ${visible(key)} is ${size} bytes, larger than any ${what} (${MAX_DECISION_BYTES} bytes at most); left out, unread`)
      return false
    }
    const [decision, outcome] = await Promise.all([
      small(decided, decisionKey(id), 'decision') ? readDecision(bucket, id).catch(leftOut) : undefined,
      small(settled, outcomeKey(id), 'outcome') ? readOutcome(bucket, id).catch(leftOut) : undefined,
    ])
    return {request, decision, outcome, state: stateOf(request, decision, outcome, now)}
  })
  return views.filter((v): v is RequestView => v !== undefined).sort((a, b) => b.request.createdAt.localeCompare(a.request.createdAt))
}

const idOf = (key: string) => key.slice(key.lastIndexOf('/') + 1).replace(/\.json$/, '')

async function collect(bucket: Bucket, prefix: string, since: Date): Promise<{id: string; size: number}[]> {
  const out: {id: string; size: number}[] = []
  for await (const o of bucket.list(prefix)) if (o.key.endsWith('.json') && o.lastModified >= since) out.push({id: idOf(o.key), size: o.size})
  return out
}

/** The ids under `prefix`, with the size of each record. */
async function names(bucket: Bucket, prefix: string): Promise<Map<string, number>> {
  const out = new Map<string, number>()
  for await (const o of bucket.list(prefix)) if (o.key.endsWith('.json')) out.set(idOf(o.key), o.size)
  return out
}
