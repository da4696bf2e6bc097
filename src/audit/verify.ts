import {genesisHash, HASH_SUFFIX, sha256hex, SIG_SUFFIX} from './chain.js'
import {DocumentError} from '../util/document.js'
import {addToTotals, emptyTotals, parseEventLine, type AuditEvent, type SessionStartData, type StatementData, type Totals} from './events.js'
import {verifySignature, type KeyRing} from './signing.js'
import {describeKey, type SignerTrust} from './trust.js'
import {sessionObjectKey} from './shipper.js'

export type ProblemCode =
  | 'EMPTY_LOG'
  | 'MALFORMED_LINE'
  | 'TRUNCATED_LINE'
  | 'HASH_MISMATCH'
  | 'PREV_MISMATCH'
  | 'SEQ_GAP'
  | 'SEQ_OUT_OF_ORDER'
  | 'SESSION_MISMATCH'
  | 'MISSING_START'
  | 'UNEXPECTED_START'
  | 'EVENTS_AFTER_END'
  | 'MISSING_END'
  | 'SIGNATURE_MISSING'
  | 'SIGNATURE_INVALID'
  | 'UNKNOWN_KEY'
  | 'KEY_IDENTITY_MISMATCH'
  | 'UNTRUSTED_SIGNER'
  | 'TOTALS_MISMATCH'
  | 'OBJECT_KEY_MISMATCH'
  | 'OBJECT_UNREADABLE'
  | 'DUPLICATE_SESSION'

export interface VerifyProblem {
  /** 1-based line number in the log. */
  line: number
  seq?: number
  code: ProblemCode
  message: string
}

export interface VerifyResult {
  ok: boolean
  sessionId?: string
  /** `interrupted`: the writer died and the shipper sealed the log; complete as far as the disk held. */
  status: 'ended' | 'interrupted' | 'incomplete'
  lines: number
  /** Highest seq covered by a valid signature (a signature covers every line before it). */
  signedThroughSeq: number
  keyIds: string[]
  problems: VerifyProblem[]
}

const SIGNED_TYPES = new Set(['session.start', 'checkpoint', 'session.end', 'session.interrupted'])

/**
 * Checks a session log offline against published keys and reports every problem it finds, each
 * with its line, seq and what is wrong; it does not stop at the first.
 *
 * Pass the raw file content (string or Buffer) to also detect a torn last line; an array is taken
 * as complete lines without their newlines.
 */
export interface VerifyOptions {
  /** When set, only the keys it names may sign (see src/audit/trust.ts). */
  trust?: SignerTrust
  /**
   * The bucket key the log was read from. The shipper stores a session under a key made from its
   * id, start day and target; a log stored under another key was copied or moved, which hides it
   * from the readers that prune by day and target (`--since`, reports), or stands in for another
   * session's log.
   */
  objectKey?: string
}

export function verifySession(input: string | Buffer | string[], keys: KeyRing, options: VerifyOptions = {}): VerifyResult {
  const {trust} = options
  let lines: string[]
  let torn = false
  if (Array.isArray(input)) {
    lines = input
  } else {
    const text = typeof input === 'string' ? input : input.toString('utf8')
    lines = text.split('\n')
    if (lines[lines.length - 1] === '') lines.pop()
    else torn = lines.length > 0
  }

  const problems: VerifyProblem[] = []
  const add = (line: number, code: ProblemCode, message: string, seq?: number) => problems.push({line, ...(seq !== undefined ? {seq} : {}), code, message})

  let sessionId: string | undefined
  let start: SessionStartData | undefined
  let startTs: string | undefined
  let prevBytes: string | undefined
  let maxSeq = 0
  const seen = new Set<number>()
  let terminal: {line: number; ev: AuditEvent} | undefined
  let signedThroughSeq = 0
  const keyIds = new Set<string>()
  const untrustedReported = new Set<string>()
  const totals: Totals = emptyTotals()

  if (lines.length === 0) add(0, 'EMPTY_LOG', 'the log has no events')

  lines.forEach((raw, idx) => {
    const n = idx + 1
    const isTornLast = torn && n === lines.length
    const prevOfThis = prevBytes
    prevBytes = raw

    const m = HASH_SUFFIX.exec(raw)
    let ev: AuditEvent | undefined
    try {
      ev = parseEventLine(raw)
    } catch (err) {
      if (isTornLast) add(n, 'TRUNCATED_LINE', `last line is cut off after ${Buffer.byteLength(raw)} bytes (no newline, not valid JSON): the file was truncated`)
      else add(n, 'MALFORMED_LINE', `not a valid v1 event: ${err instanceof DocumentError ? err.problems.join('; ') : (err as Error).message}`)
      return
    }
    const seq = ev.seq
    if (isTornLast) add(n, 'TRUNCATED_LINE', 'last line has no trailing newline: the file was truncated or is still being written', seq)

    if (!m) {
      add(n, 'MALFORMED_LINE', 'line does not end with its "hash" member', seq)
    } else {
      const unhashed = raw.slice(0, m.index) + '}'
      if (sha256hex(unhashed) !== m[1]) add(n, 'HASH_MISMATCH', `content does not match its hash: line ${n} was edited`, seq)
    }

    if (sessionId === undefined) sessionId = ev.session
    else if (ev.session !== sessionId) add(n, 'SESSION_MISMATCH', `belongs to session ${ev.session}, not ${sessionId}: spliced from another log`, seq)

    const expectedPrev = prevOfThis === undefined ? genesisHash(ev.session) : sha256hex(prevOfThis)
    if (ev.prev !== expectedPrev) {
      add(
        n,
        'PREV_MISMATCH',
        prevOfThis === undefined
          ? 'first line is not the genesis of its session: the log does not start at its first event'
          : `does not follow line ${n - 1}: a line was removed, inserted or reordered here, or line ${n - 1} was edited`,
        seq,
      )
    }

    if (seen.has(seq)) {
      add(n, 'SEQ_OUT_OF_ORDER', `seq ${seq} appears twice (duplicated line)`, seq)
    } else if (seq <= maxSeq) {
      add(n, 'SEQ_OUT_OF_ORDER', `seq ${seq} comes after seq ${maxSeq}: lines were reordered`, seq)
    } else {
      if (seq !== maxSeq + 1) {
        const from = maxSeq + 1
        add(n, 'SEQ_GAP', `seq ${seq} follows seq ${maxSeq}: ${seq - from === 1 ? `seq ${from} is` : `seqs ${from}–${seq - 1} are`} missing here`, seq)
      }
      maxSeq = seq
    }
    seen.add(seq)

    if (n === 1 && ev.type !== 'session.start') add(n, 'MISSING_START', `first event is ${ev.type}, not session.start: the beginning of the log is missing`, seq)
    if (ev.type === 'session.start') {
      if (n !== 1) add(n, 'UNEXPECTED_START', 'session.start is not the first line', seq)
      else {
        start = ev.data as SessionStartData
        startTs = ev.ts
      }
    }
    if (terminal) add(n, 'EVENTS_AFTER_END', `event after the ${terminal.ev.type} on line ${terminal.line}`, seq)
    if (ev.type === 'statement') addToTotals(totals, ev.data as StatementData)

    if (SIGNED_TYPES.has(ev.type) && !ev.sig) add(n, 'SIGNATURE_MISSING', `${ev.type} must be signed but has no signature`, seq)
    if (ev.sig) checkSignature(raw, m, ev, n, seq)

    if ((ev.type === 'session.end' || ev.type === 'session.interrupted') && !terminal) {
      terminal = {line: n, ev}
      const claimed = (ev.data as {totals?: Totals} | null)?.totals
      if (claimed && JSON.stringify(claimed) !== JSON.stringify(totals)) {
        add(n, 'TOTALS_MISMATCH', `${ev.type} claims ${JSON.stringify(claimed)} but the log holds ${JSON.stringify(totals)}`, seq)
      }
    }
  })

  function checkSignature(raw: string, m: RegExpExecArray | null, ev: AuditEvent, n: number, seq: number) {
    const sig = ev.sig!
    keyIds.add(sig.keyId)
    const key = keys.get(sig.keyId)
    if (!key) {
      add(n, 'UNKNOWN_KEY', `signed by key ${sig.keyId}, which is not published in keys/`, seq)
      return
    }
    const withSig = m ? raw.slice(0, m.index) + '}' : raw
    const s = SIG_SUFFIX.exec(withSig)
    const unsigned = s ? withSig.slice(0, s.index) + '}' : undefined
    if (!unsigned || !verifySignature(unsigned, sig.value, key.publicKey)) {
      add(n, 'SIGNATURE_INVALID', `signature by key ${sig.keyId} does not match the line: forged, or the line or an earlier one was altered`, seq)
      return
    }
    if (trust && !trust.trusts(key)) {
      // Once per key: every checkpoint of the session carries the same signer.
      if (!untrustedReported.has(key.keyId)) {
        untrustedReported.add(key.keyId)
        add(n, 'UNTRUSTED_SIGNER', `signed by ${describeKey(key)}, which is not a trusted signer; trusted: ${trust.names.join(', ')}`, seq)
      }
      return
    }
    if (key.signer) {
      // A gateway signs for everyone who signs in to it, so no identity binding can vouch for it:
      // only an auditor naming it can.
      if (!trust) {
        if (!untrustedReported.has(key.keyId)) {
          untrustedReported.add(key.keyId)
          add(n, 'UNTRUSTED_SIGNER', `signed by ${describeKey(key)}, and no trusted signers are named: a gateway's sessions verify only against gateways the auditor names (--signer ${key.signer.name} or ${key.keyId}, or recording.trustedSigners)`, seq)
        }
        return
      }
    } else if (start) {
      const bound = [key.identity, ...key.history].some((b) => b.subject === start!.identity.subject && b.issuer === start!.identity.issuer)
      if (!bound) {
        add(n, 'KEY_IDENTITY_MISMATCH', `key ${sig.keyId} is bound to ${key.identity.email ?? key.identity.subject}, not to the session's identity ${start.identity.email ?? start.identity.subject}`, seq)
        return
      }
    }
    // A valid signature vouches for every line before it only if the chain up to it was intact.
    if (!problems.some((p) => p.line <= n && p.code !== 'UNKNOWN_KEY')) signedThroughSeq = Math.max(signedThroughSeq, seq)
  }

  if (options.objectKey !== undefined && sessionId !== undefined) {
    // The shipper's own fallbacks (src/audit/spool-scan.ts), so a log it shipped is always where this expects it.
    const expected = start ? sessionObjectKey(sessionId, start.target ?? '_unknown', start.startedAt ?? startTs ?? '') : undefined
    if (expected !== options.objectKey) {
      add(0, 'OBJECT_KEY_MISMATCH', `stored as ${options.objectKey}, but session ${sessionId}${expected ? ` is shipped as ${expected}` : ' has no session.start to place it'}: the object was copied or moved`)
    }
  }

  if (lines.length > 0 && !terminal) {
    const last = lines.length
    add(last, 'MISSING_END', `log ends at line ${last} (seq ${maxSeq}) without session.end: truncated, or the session is still being written${signedThroughSeq ? `; signed through seq ${signedThroughSeq}` : ''}`)
  }

  return {
    ok: problems.length === 0,
    sessionId,
    status: terminal ? (terminal.ev.type === 'session.end' ? 'ended' : 'interrupted') : 'incomplete',
    lines: lines.length,
    signedThroughSeq,
    keyIds: [...keyIds],
    problems,
  }
}

/** The verdict on an object under `sessions/` that cannot be read as a log at all (src/audit/index-cache.ts). */
export function unreadableObjectResult(problem: string): VerifyResult {
  return {ok: false, status: 'incomplete', lines: 0, signedThroughSeq: 0, keyIds: [], problems: [{line: 0, code: 'OBJECT_UNREADABLE', message: `cannot be read as a session log: ${problem}`}]}
}

/**
 * Logs read from files (an export) hold no bucket key to check where each was stored, so a session's
 * log exported twice (a copy under another day or target, which the bucket's `verify` fails with
 * OBJECT_KEY_MISMATCH) verified twice, and an export of a period counted it twice. Every log after
 * the first with the same session id fails with DUPLICATE_SESSION, naming where the first is.
 */
export function flagDuplicateSessions<T extends VerifyResult & {source: string}>(results: T[]): T[] {
  const first = new Map<string, string>()
  return results.map((r) => {
    if (r.sessionId === undefined) return r
    const earlier = first.get(r.sessionId)
    if (earlier === undefined) {
      first.set(r.sessionId, r.source)
      return r
    }
    return {...r, ok: false, problems: [...r.problems, {line: 0, code: 'DUPLICATE_SESSION' as const, message: `session ${r.sessionId} is verified already, from ${earlier}: one session has one log, so this is a copy of it, or a log made under its id`}]}
  })
}

/** Splits logs exported back to back (`sessions export`) at each first line, keeping every byte. */
export function splitConcatenatedSessions(text: string): string[] {
  const parts: string[] = []
  let current = ''
  for (const line of text.split(/(?<=\n)/)) {
    if (current && /^\{"v":1,"type":"[^"]*","session":"[^"]*","seq":1,/.test(line)) {
      parts.push(current)
      current = ''
    }
    current += line
  }
  if (current) parts.push(current)
  return parts
}
