import type {FieldDescription, PgNoticeFields} from './fields.js'
import {AuthCode, Backend} from './codes.js'
import {ProtocolError} from './framer.js'
import {Reader} from './reader.js'
import {Writer} from './writer.js'

/** Backend (server → client) messages: decoding what the tunnel inspects, encoding what it says. */

/** ErrorResponse / NoticeResponse field letters and their names. */
const FIELD_NAMES: Record<string, string> = {
  S: 'severityLocalized',
  V: 'severity',
  C: 'code',
  M: 'message',
  D: 'detail',
  H: 'hint',
  P: 'position',
  p: 'internalPosition',
  q: 'internalQuery',
  W: 'where',
  s: 'schema',
  t: 'table',
  c: 'column',
  d: 'dataType',
  n: 'constraint',
  F: 'file',
  L: 'line',
  R: 'routine',
}
const FIELD_LETTERS: Record<string, string> = Object.fromEntries(Object.entries(FIELD_NAMES).map(([k, v]) => [v, k]))

export type NoticeFields = PgNoticeFields & Record<string, string | undefined>

export function decodeNotice(body: Buffer): NoticeFields {
  const r = new Reader(body, 'ErrorResponse')
  const out: Record<string, string> = {}
  for (;;) {
    const t = r.byte()
    if (t === 0) break
    const letter = String.fromCharCode(t)
    out[FIELD_NAMES[letter] ?? `field_${letter}`] = r.cstring()
  }
  if (!out.severity) out.severity = out.severityLocalized ?? 'ERROR'
  return out as unknown as NoticeFields
}

function encodeFields(fields: Record<string, string | undefined>, code: number): Buffer {
  const w = new Writer(128)
  const severity = fields.severity ?? 'ERROR'
  w.byte(0x53).cstring(fields.severityLocalized ?? severity)
  w.byte(0x56).cstring(severity)
  for (const [name, value] of Object.entries(fields)) {
    if (value === undefined || name === 'severity' || name === 'severityLocalized') continue
    const letter = FIELD_LETTERS[name] ?? (name.startsWith('field_') ? name.slice(6) : undefined)
    if (!letter) continue
    w.byte(letter.charCodeAt(0)).cstring(value)
  }
  return w.byte(0).finish(code)
}

export function encodeError(fields: PgNoticeFields | NoticeFields): Buffer {
  return encodeFields(fields as NoticeFields, Backend.ErrorResponse)
}

export function encodeNotice(fields: PgNoticeFields | NoticeFields): Buffer {
  return encodeFields(fields as NoticeFields, Backend.NoticeResponse)
}

export type AuthRequest =
  | {kind: 'ok'}
  | {kind: 'cleartext'}
  | {kind: 'md5'; salt: Buffer}
  | {kind: 'sasl'; mechanisms: string[]}
  | {kind: 'sasl-continue'; data: Buffer}
  | {kind: 'sasl-final'; data: Buffer}
  | {kind: 'other'; code: number}

export function decodeAuth(body: Buffer): AuthRequest {
  const r = new Reader(body, 'Authentication')
  const code = r.int32()
  switch (code) {
    case AuthCode.Ok:
      return {kind: 'ok'}
    case AuthCode.CleartextPassword:
      return {kind: 'cleartext'}
    case AuthCode.MD5Password:
      return {kind: 'md5', salt: Buffer.from(r.bytes(4))}
    case AuthCode.SASL: {
      const mechanisms: string[] = []
      for (;;) {
        const m = r.cstring()
        if (m === '') break
        mechanisms.push(m)
      }
      return {kind: 'sasl', mechanisms}
    }
    case AuthCode.SASLContinue:
      return {kind: 'sasl-continue', data: Buffer.from(r.rest())}
    case AuthCode.SASLFinal:
      return {kind: 'sasl-final', data: Buffer.from(r.rest())}
    default:
      return {kind: 'other', code}
  }
}

export function encodeAuthOk(): Buffer {
  return new Writer(16).int32(AuthCode.Ok).finish(Backend.Authentication)
}

export function encodeAuthCleartext(): Buffer {
  return new Writer(16).int32(AuthCode.CleartextPassword).finish(Backend.Authentication)
}

export function encodeAuthSasl(mechanisms: string[]): Buffer {
  const w = new Writer(64).int32(AuthCode.SASL)
  for (const m of mechanisms) w.cstring(m)
  return w.byte(0).finish(Backend.Authentication)
}

export function encodeAuthSaslContinue(data: string): Buffer {
  return new Writer(128).int32(AuthCode.SASLContinue).bytes(Buffer.from(data)).finish(Backend.Authentication)
}

export function encodeAuthSaslFinal(data: string): Buffer {
  return new Writer(128).int32(AuthCode.SASLFinal).bytes(Buffer.from(data)).finish(Backend.Authentication)
}

export function encodeParameterStatus(name: string, value: string): Buffer {
  return new Writer(64).cstring(name).cstring(value).finish(Backend.ParameterStatus)
}

export function decodeParameterStatus(body: Buffer): {name: string; value: string} {
  const r = new Reader(body, 'ParameterStatus')
  return {name: r.cstring(), value: r.cstring()}
}

export function encodeBackendKeyData(processId: number, secretKey: number): Buffer {
  return new Writer(16).int32(processId).int32(secretKey).finish(Backend.BackendKeyData)
}

export function decodeBackendKeyData(body: Buffer): {processId: number; secretKey: number} {
  const r = new Reader(body, 'BackendKeyData')
  return {processId: r.int32(), secretKey: r.int32()}
}

export function encodeReadyForQuery(status: 'I' | 'T' | 'E'): Buffer {
  return new Writer(8).byte(status.charCodeAt(0)).finish(Backend.ReadyForQuery)
}

/** `at`: where the body starts in `bytes` (5 when given the whole frame, sparing a body view). */
export function decodeReadyForQuery(bytes: Buffer, at = 0): 'I' | 'T' | 'E' {
  const s = String.fromCharCode(bytes[at] ?? 0)
  if (s !== 'I' && s !== 'T' && s !== 'E') throw new ProtocolError(`ReadyForQuery with unknown status ${JSON.stringify(s)}`)
  return s
}

/**
 * NegotiateProtocolVersion: the version the server will speak, written whole (major and minor, as
 * PostgreSQL writes it: libpq 18 takes a bare minor of 0 for protocol 0.0 and gives up), and the
 * `_pq_.` options it did not take.
 */
export function encodeNegotiateProtocolVersion(major: number, minor: number, unsupported: string[]): Buffer {
  const w = new Writer(32).int32(((major << 16) | minor) >>> 0).int32(unsupported.length)
  for (const o of unsupported) w.cstring(o)
  return w.finish(Backend.NegotiateProtocolVersion)
}

export function decodeRowDescription(body: Buffer): FieldDescription[] {
  const r = new Reader(body, 'RowDescription')
  const n = r.int16()
  const fields: FieldDescription[] = []
  for (let i = 0; i < n; i++) {
    fields.push({
      name: r.cstring(),
      tableOid: r.uint32(),
      columnAttr: r.int16(),
      typeOid: r.uint32(),
      typeSize: r.int16(),
      typeModifier: r.int32(),
      format: r.int16(),
    })
  }
  return fields
}

export function encodeRowDescription(fields: FieldDescription[]): Buffer {
  const w = new Writer(32 + fields.length * 32).int16(fields.length)
  for (const f of fields) {
    w.cstring(f.name).uint32(f.tableOid).int16(f.columnAttr).uint32(f.typeOid).int16(f.typeSize).int32(f.typeModifier).int16(f.format)
  }
  return w.finish(Backend.RowDescription)
}

/** Field values are views into `body`: copy them before keeping them past the message. */
export function decodeDataRow(body: Buffer): (Buffer | null)[] {
  const r = new Reader(body, 'DataRow')
  const n = r.int16()
  const values: (Buffer | null)[] = new Array(n)
  for (let i = 0; i < n; i++) {
    const len = r.int32()
    values[i] = len === -1 ? null : r.bytes(len)
  }
  return values
}

/** Every masked row is re-encoded, so this writes straight into one buffer of the exact size. */
export function encodeDataRow(values: (Buffer | null)[]): Buffer {
  let size = 7
  for (const v of values) size += 4 + (v ? v.length : 0)
  const out = Buffer.allocUnsafe(size)
  out[0] = Backend.DataRow
  out.writeInt32BE(size - 1, 1)
  out.writeInt16BE(values.length, 5)
  let at = 7
  for (const v of values) {
    if (v === null) {
      at = out.writeInt32BE(-1, at)
    } else {
      at = out.writeInt32BE(v.length, at)
      out.set(v, at)
      at += v.length
    }
  }
  return out
}

export function decodeCommandComplete(body: Buffer): string {
  return new Reader(body, 'CommandComplete').cstring()
}

/** Rows a CommandComplete tag reports: `SELECT 5`, `INSERT 0 5`, `UPDATE 5`, `COPY 5`… */
export function rowsFromTag(tag: string): number {
  const last = tag.lastIndexOf(' ')
  if (last < 0) return 0
  const n = Number(tag.slice(last + 1))
  return Number.isFinite(n) ? n : 0
}

export function decodeNotification(body: Buffer): {processId: number; channel: string; payload: string} {
  const r = new Reader(body, 'NotificationResponse')
  return {processId: r.int32(), channel: r.cstring(), payload: r.cstring()}
}

export function encodeNotification(processId: number, channel: string, payload: string): Buffer {
  return new Writer(64).int32(processId).cstring(channel).cstring(payload).finish(Backend.NotificationResponse)
}

export function encodeCopyData(chunk: Buffer): Buffer {
  return new Writer(chunk.length + 8).bytes(chunk).finish(Backend.CopyData)
}
