import {hash} from 'node:crypto'

/**
 * The hash chain. Each line is `{"v":1,"type":…,"session":…,"seq":n,"ts":…,"prev":…,"data":{…}[,"sig":{…}],"hash":"…"}`:
 *  - `prev` is sha256 of the previous line's exact bytes (without the newline); the first line's
 *    `prev` is sha256 of the session id, so a log cannot be spliced onto another session.
 *  - `hash` is sha256 of the line's bytes up to `,"hash"` closed with `}`. Because `hash` is always
 *    the last member, a verifier recovers those bytes exactly by cutting the suffix: no canonical
 *    JSON is needed, and what is hashed is what is on disk.
 *  - `sig`, when present, sits just before `hash` and signs the bytes without `sig` and `hash`
 *    (see signing.ts), which include `prev`, so one signature covers every line before it.
 */

export const EVENT_VERSION = 1

export const HASH_SUFFIX = /,"hash":"([0-9a-f]{64})"\}$/
export const SIG_SUFFIX = /,"sig":\{"keyId":"([0-9a-f]{32})","alg":"ed25519","value":"([A-Za-z0-9+/]+={0,2})"\}\}$/

/** Two of these per recorded event: the one-shot `hash` skips creating a Hash object each time. */
export function sha256hex(data: string | Buffer): string {
  return hash('sha256', data, 'hex')
}

export function genesisHash(sessionId: string): string {
  return sha256hex(sessionId)
}

export interface Signer {
  keyId: string
  /** Returns the base64 Ed25519 signature of `message`. */
  sign(message: Buffer): string
}

/** What a signature signs: a domain-separated digest of the unsigned event bytes. */
export function signatureMessage(unsignedBytes: string): Buffer {
  return Buffer.from(`dbgate-audit-v1\n${sha256hex(unsignedBytes)}`)
}

export interface EventHead {
  type: string
  session: string
  seq: number
  ts: string
  prev: string
  data: unknown
}

/** Serializes one event into its line (no trailing newline), signing it when a signer is given. */
export function sealEvent(ev: EventHead, signer?: Signer): string {
  const body = eventBody(ev, signer)
  return `${body.slice(0, -1)},"hash":"${sha256hex(body)}"}`
}

/** The line up to its `hash`, closed with `}`: what `hash` is the digest of. */
function eventBody(ev: EventHead, signer?: Signer, dataJson?: string): string {
  // Member order is fixed here and nowhere else; verifiers depend on sig and hash being last.
  const body =
    dataJson === undefined
      ? JSON.stringify({v: EVENT_VERSION, type: ev.type, session: ev.session, seq: ev.seq, ts: ev.ts, prev: ev.prev, data: ev.data})
      : // The same bytes, with `data` already encoded (`statementJson`): the envelope's members written as JSON.stringify writes them.
        `{"v":${EVENT_VERSION},"type":${JSON.stringify(ev.type)},"session":${JSON.stringify(ev.session)},"seq":${JSON.stringify(ev.seq)},"ts":${JSON.stringify(ev.ts)},"prev":${JSON.stringify(ev.prev)},"data":${dataJson}}`
  if (!signer) return body
  const value = signer.sign(signatureMessage(body))
  return `${body.slice(0, -1)},"sig":${JSON.stringify({keyId: signer.keyId, alg: 'ed25519', value})}}`
}

/** `,"hash":"…"}` and the newline: what a line adds to its body's bytes once the closing `}` is cut. */
const HASH_TAIL_BYTES = 9 + 64 + 2 + 1

/**
 * `sealEvent`'s line as the bytes the spool writes (newline included), and its hash (the next line's
 * `prev`). The body is encoded once and both hashes read bytes: no string is encoded three times.
 */
export function sealEventBytes(ev: EventHead, signer?: Signer, dataJson?: string): {bytes: Buffer; hash: string} {
  const bytes = sealBytes(ev, signer, dataJson)
  return {bytes, hash: sealedHash}
}

/** `sealEventBytes`'s bytes; their hash is left in `sealedHash` (no object made per line). */
function sealBytes(ev: EventHead, signer?: Signer, dataJson?: string): Buffer {
  if (!signer && dataJson !== undefined) return sealDataBytes(envelopeStart(ev.type, ev.session), ev.seq, ev.ts, ev.prev, dataJson)
  const body = eventBody(ev, signer, dataJson)
  const n = Buffer.byteLength(body, 'utf8')
  const bytes = Buffer.allocUnsafe(n + HASH_TAIL_BYTES - 1)
  bytes.write(body, 0, n, 'utf8')
  return withHash(bytes, n)
}

/** `{"v":1,"type":…,"session":…`: the part of an envelope that is the same for every event of a type in a session. */
const envelopeStart = (type: string, session: string): string => `{"v":${EVENT_VERSION},"type":${JSON.stringify(type)},"session":${JSON.stringify(session)}`

/**
 * An unsigned line whose `data` is already encoded: the envelope's head and `dataJson` written into
 * the line's bytes one after the other, without first joining them into one string (which would be
 * copied whole to be encoded). The bytes are `eventBody`'s: the head ends in ASCII and `dataJson`
 * starts with ASCII, so encoding the two apart cannot split a character. `plain` says that `seq` is
 * a safe integer, `ts` an ISO date and `prev` a hex digest, which JSON.stringify writes unchanged
 * (between quotes for the two strings), so the head is written without it.
 */
function sealDataBytes(start: string, seq: number, ts: string, prev: string, dataJson: string, plain = false): Buffer {
  const head = plain
    ? `${start},"seq":${seq},"ts":"${ts}","prev":"${prev}","data":`
    : `${start},"seq":${JSON.stringify(seq)},"ts":${JSON.stringify(ts)},"prev":${JSON.stringify(prev)},"data":`
  // A UTF-16 code unit is at most 3 UTF-8 bytes (a surrogate pair, two units, is 4; a lone one is
  // written as U+FFFD, 3), so this much room holds the line whatever its text: it is encoded
  // straight into the slab, without first counting its bytes.
  const most = 3 * (head.length + dataJson.length) + HASH_TAIL_BYTES
  if (most > SLAB_LINE_BYTES) return sealLargeDataBytes(head, dataJson)
  if (slabAt + most > slab.length) {
    slab = Buffer.allocUnsafe(SLAB_BYTES)
    slabAt = 0
  }
  const at = slabAt
  const h = slab.write(head, at, 'utf8')
  const n = h + slab.write(dataJson, at + h, 'utf8') + 1
  slab[at + n - 1] = 0x7d // }
  const bytes = slab.subarray(at, at + n + HASH_TAIL_BYTES - 1)
  slabAt = at + bytes.length
  return withHash(bytes, n)
}

/** `sealDataBytes` for a line too long for the slab: its own buffer, of its exact size. */
function sealLargeDataBytes(head: string, dataJson: string): Buffer {
  const h = Buffer.byteLength(head, 'utf8')
  const d = Buffer.byteLength(dataJson, 'utf8')
  const n = h + d + 1
  const bytes = Buffer.allocUnsafe(n + HASH_TAIL_BYTES - 1)
  bytes.write(head, 0, h, 'utf8')
  bytes.write(dataJson, h, d, 'utf8')
  bytes[n - 1] = 0x7d // }
  return withHash(bytes, n)
}

/**
 * Where unsigned lines are encoded, one after the other, each handed out as a view of its own bytes
 * (as Node's pool does for small buffers): a slab is never written twice, so a line waiting in a
 * spool's queue keeps its bytes; a new slab is taken when the line that comes may not fit.
 */
const SLAB_BYTES = 64 * 1024
/** Lines that may need more than this (a long text) get a buffer of their own. */
const SLAB_LINE_BYTES = 16 * 1024
let slab = Buffer.allocUnsafe(0)
let slabAt = 0

/**
 * The hash of the line last sealed (the next one's `prev`), read right after sealing: kept here
 * rather than returned with the bytes in an object made for every line.
 */
let sealedHash = ''

/** Closes the body of `n` bytes in `bytes` with its hash and a newline; the hash of the line (the next one's `prev`) goes to `sealedHash`. */
function withHash(bytes: Buffer, n: number): Buffer {
  const bodyHash = hash('sha256', bytes.subarray(0, n), 'hex')
  bytes.write(`,"hash":"${bodyHash}"}\n`, n - 1, 'latin1')
  sealedHash = hash('sha256', bytes.subarray(0, bytes.length - 1), 'hex')
  return bytes
}

const HEX_DIGEST = /^[0-9a-f]{64}$/

/** Keeps the running state of one session's chain so each append is O(1). */
export class ChainState {
  seq = 0
  private last: string
  /** Whether `last` is a hex digest, which JSON.stringify writes as it is (always, once an event is appended). */
  private lastIsHex: boolean

  /** The hash of the last line: the next one's `prev`. */
  get prev(): string {
    return this.last
  }

  /** `envelopeStart` of the last type appended unsigned (mostly `statement`), made with the first such event. */
  private startType = ''
  private startJson = ''

  private startOf(type: string): string {
    if (this.startType !== type || this.startJson === '') {
      this.startType = type
      this.startJson = flat(envelopeStart(type, this.session))
    }
    return this.startJson
  }

  constructor(readonly session: string, resume?: {seq: number; prev: string}) {
    this.last = resume?.prev ?? genesisHash(session)
    this.lastIsHex = HEX_DIGEST.test(this.last)
    this.seq = resume?.seq ?? 0
  }

  append(type: string, data: unknown, ts: Date, signer?: Signer): string {
    const line = sealEvent({type, session: this.session, seq: this.seq + 1, ts: ts.toISOString(), prev: this.prev, data}, signer)
    this.seq += 1
    this.last = sha256hex(line)
    this.lastIsHex = true
    return line
  }

  /**
   * `append`, as the bytes the spool writes (the line and its newline). `dataJson`, when given, is
   * `JSON.stringify(data)` made by the caller (`statementJson`), and is what is written.
   */
  appendBytes(type: string, data: unknown, ts: Date | number, signer?: Signer, dataJson?: string): Buffer {
    const seq = this.seq + 1
    const bytes =
      !signer && dataJson !== undefined
        ? // An ISO date needs no escaping: with a safe integer and a hex `prev`, the head is plain.
          sealDataBytes(this.startOf(type), seq, eventTimes.of(ts), this.last, dataJson, this.lastIsHex && Number.isSafeInteger(seq))
        : sealBytes({type, session: this.session, seq, ts: eventTimes.of(ts), prev: this.last, data}, signer, dataJson)
    this.seq = seq
    this.last = sealedHash
    this.lastIsHex = true
    return bytes
  }
}

let flatSink = 0

/**
 * `s`, made one piece. A string built by concatenation is a tree of its pieces, walked piece by
 * piece each time it is copied (into a larger string, or encoded into bytes); V8 joins it in place
 * the first time a character of it is read. A string kept to be written again and again (the
 * members a session's statements share) is joined once, when kept.
 */
export function flat(s: string): string {
  flatSink = s.length > 0 ? s.charCodeAt(s.length - 1) : flatSink
  return s
}

/** `.000Z` … `.999Z`: the end of an ISO date for each millisecond of a second. */
const MILLIS_Z: string[] = []
for (let ms = 0; ms < 1000; ms++) MILLIS_Z.push(`.${String(ms).padStart(3, '0')}Z`)

/**
 * `date.toISOString()`, remembered for the last millisecond asked; another millisecond of the same
 * second is that second's `YYYY-MM-DDTHH:mm:ss` and its own `.sssZ` (sessions interleaving ask for
 * a few milliseconds in turn). A time in milliseconds makes no Date unless the second is new.
 */
class IsoMemo {
  private time = NaN
  private iso = ''
  /** The first millisecond of the second `secondIso` is the start of (`YYYY-MM-DDTHH:mm:ss`), NaN when none. */
  private second = NaN
  private secondIso = ''

  of(date: Date | number): string {
    const t = typeof date === 'number' ? date : date.getTime()
    if (t === this.time) return this.iso
    const ms = t % 1000
    // Only for the four-digit years (0 until 9999) whose ISO form is exactly 24 characters.
    if (t - ms === this.second && ms >= 0) this.iso = this.secondIso + MILLIS_Z[ms]
    else {
      this.iso = typeof date === 'number' ? new Date(date).toISOString() : date.toISOString()
      const plain = t >= 0 && t <= MAX_FOUR_DIGIT_YEAR_TIME && Number.isInteger(t) && this.iso.length === 24
      this.second = plain ? t - ms : NaN
      this.secondIso = plain ? flat(this.iso.slice(0, 19)) : ''
    }
    this.time = t
    return this.iso
  }
}

/** 9999-12-31T23:59:59.999Z: later dates are written with a six-digit, signed year. */
const MAX_FOUR_DIGIT_YEAR_TIME = 253402300799999

/**
 * Events' `ts` and statements' `startedAt` are remembered apart: each mostly falls in the same
 * millisecond as the last one of its kind, but a statement started in the millisecond before its
 * event (or, sessions interleaving, before the last event) would otherwise ask for each in turn.
 */
const eventTimes = new IsoMemo()
const startTimes = new IsoMemo()

/** `date.toISOString()` of a statement's start, remembered for the last millisecond asked. */
export function isoString(date: Date): string {
  return startTimes.of(date)
}
