import {CANCEL_REQUEST, GSSENC_REQUEST, SSL_REQUEST} from './codes.js'
import {ProtocolError} from './framer.js'
import {Reader} from './reader.js'
import {Writer} from './writer.js'

/** Frontend (client → server) messages the tunnel needs to read. */

export type StartupPacket =
  | {kind: 'ssl'}
  | {kind: 'gssenc'}
  | {kind: 'cancel'; processId: number; secretKey: number}
  | {kind: 'startup'; major: number; minor: number; params: Record<string, string>}

export function decodeStartup(body: Buffer): StartupPacket {
  const r = new Reader(body, 'startup')
  const version = r.int32()
  if (version === SSL_REQUEST) return {kind: 'ssl'}
  if (version === GSSENC_REQUEST) return {kind: 'gssenc'}
  if (version === CANCEL_REQUEST) return {kind: 'cancel', processId: r.int32(), secretKey: r.int32()}
  const major = version >>> 16
  const minor = version & 0xffff
  if (major !== 3) throw new ProtocolError(`unsupported frontend protocol ${major}.${minor}: dbgate speaks 3.0`, '0A000')
  const params: Record<string, string> = {}
  for (;;) {
    const key = r.cstring()
    if (key === '') break
    params[key] = r.cstring()
  }
  return {kind: 'startup', major, minor, params}
}

export function encodeStartup(params: Record<string, string>): Buffer {
  const w = new Writer(64).int32(196608)
  for (const [k, v] of Object.entries(params)) w.cstring(k).cstring(v)
  return w.byte(0).finishUntyped()
}

export function encodeCancelRequest(processId: number, secretKey: number): Buffer {
  return new Writer(16).int32(CANCEL_REQUEST).int32(processId).int32(secretKey).finishUntyped()
}

export function encodeSslRequest(): Buffer {
  return new Writer(8).int32(SSL_REQUEST).finishUntyped()
}

export function decodeQuery(body: Buffer): string {
  return new Reader(body, 'Query').cstring()
}

export interface ParseMessage {
  name: string
  text: string
  paramTypes: number[]
}

export function decodeParse(body: Buffer): ParseMessage {
  const r = new Reader(body, 'Parse')
  const name = r.cstring()
  const text = r.cstring()
  // Counts are unsigned, as the server reads them: read signed, a Parse declaring 32,768 types (a
  // domain whose CHECK runs code among them) showed none to the policy while the server took them all.
  const n = r.uint16()
  const paramTypes: number[] = []
  for (let i = 0; i < n; i++) paramTypes.push(r.uint32())
  return {name, text, paramTypes}
}

export function encodeParse(msg: ParseMessage): Buffer {
  const w = new Writer(16 + msg.text.length).cstring(msg.name).cstring(msg.text).int16(msg.paramTypes.length)
  for (const t of msg.paramTypes) w.uint32(t)
  return w.finish(0x50)
}

export interface BindMessage {
  portal: string
  statement: string
  paramFormats: number[]
  params: (Buffer | null)[]
  /** How many values it binds (also when `params` was not kept). */
  paramCount: number
  resultFormats: number[]
}

const NO_PARAMS: (Buffer | null)[] = []

/**
 * A Bind, from `buf[start, end)` (a whole body by default). Without `withParams` its parameter
 * values are checked but not kept (`params` is empty): only the statement event reads them.
 */
export function decodeBind(buf: Buffer, start = 0, end = buf.length, withParams = true): BindMessage {
  const r = new Reader(buf, 'Bind', start, end)
  const portal = r.cstring()
  const statement = r.cstring()
  const nf = r.uint16()
  const paramFormats: number[] = []
  for (let i = 0; i < nf; i++) paramFormats.push(r.int16())
  const np = r.uint16()
  const params: (Buffer | null)[] = withParams ? [] : NO_PARAMS
  for (let i = 0; i < np; i++) {
    const len = r.int32()
    if (!withParams) {
      if (len !== -1) r.skip(len)
    } else params.push(len === -1 ? null : r.bytes(len))
  }
  const nr = r.uint16()
  const resultFormats: number[] = []
  for (let i = 0; i < nr; i++) resultFormats.push(r.int16())
  return {portal, statement, paramFormats, params, paramCount: np, resultFormats}
}

export function decodeDescribeOrClose(buf: Buffer, what: string, start = 0, end = buf.length): {target: 'S' | 'P'; name: string} {
  const r = new Reader(buf, what, start, end)
  const t = r.byte()
  if (t !== 0x53 && t !== 0x50) throw new ProtocolError(`${what} message names neither a statement nor a portal`)
  return {target: t === 0x53 ? 'S' : 'P', name: r.cstring()}
}

export function decodeExecute(buf: Buffer, start = 0, end = buf.length): {portal: string; maxRows: number} {
  const r = new Reader(buf, 'Execute', start, end)
  return {portal: r.cstring(), maxRows: r.int32()}
}

/** SASLInitialResponse: mechanism name, then the client-first message. */
export function decodeSaslInitial(body: Buffer): {mechanism: string; data: Buffer} {
  const r = new Reader(body, 'SASLInitialResponse')
  const mechanism = r.cstring()
  const len = r.int32()
  return {mechanism, data: len < 0 ? Buffer.alloc(0) : r.bytes(len)}
}

export function encodeQuery(text: string): Buffer {
  return new Writer(text.length + 8).cstring(text).finish(0x51)
}

/** A Bind with no parameters and text results: what the tunnel's own queries send. */
export function encodeBindNoParams(portal: string, statement: string): Buffer {
  return new Writer(portal.length + statement.length + 16).cstring(portal).cstring(statement).int16(0).int16(0).int16(0).finish(0x42)
}

export function encodeExecute(portal: string, maxRows = 0): Buffer {
  return new Writer(portal.length + 10).cstring(portal).int32(maxRows).finish(0x45)
}

export function encodeClose(target: 'S' | 'P', name: string): Buffer {
  return new Writer(name.length + 8).byte(target === 'S' ? 0x53 : 0x50).cstring(name).finish(0x43)
}
