/**
 * Which frontend messages each phase of a connection admits, and how long each may be, judged from
 * the 5-byte header before any of the body is read. This follows PostgreSQL's backend: a session
 * reads a type it knows with a bound per type or ends the connection (postgres.c, SocketBackend:
 * PQ_LARGE_MESSAGE_LIMIT for messages that carry statements or data, PQ_SMALL_MESSAGE_LIMIT for
 * the rest), COPY FROM STDIN admits only COPY messages, Flush and Sync (copyfromparse.c,
 * CopyGetData), and authentication only a password message (auth.c, recv_password_packet). Without
 * this, a message of a type no phase has, declaring a body of most of a gigabyte, would be buffered
 * whole before it was refused.
 */
import {codeName, Frontend} from './codes.js'
import {ProtocolError} from './framer.js'

/**
 * `authentication`: the tunnel asked for a password. `login`: the password was sent and the
 * upstream session is being opened; the client has nothing to send until it is told the session is
 * ready. `session`: a ready session. `copy-in`: the server reads COPY FROM STDIN. `closed`: the
 * connection has ended (a Terminate earlier in the same read); nothing after it is read.
 */
export type FrontendPhase = 'authentication' | 'login' | 'session' | 'copy-in' | 'closed'

/** PostgreSQL's PQ_SMALL_MESSAGE_LIMIT (libpq/pqcomm.h): the largest body of a message that carries no statement or data. */
export const SMALL_MESSAGE_LIMIT = 10_000

/** A message that carries statements or data: bounded only by the framer's cap (tunnel.maxMessageSize). */
const LARGE = Number.POSITIVE_INFINITY
/** A message with no body: its length is always 4. */
const EMPTY = 0

const MESSAGES: ReadonlyMap<number, {name: string; maxBody: number}> = new Map([
  [Frontend.Query, {name: 'Query', maxBody: LARGE}],
  [Frontend.Parse, {name: 'Parse', maxBody: LARGE}],
  [Frontend.Bind, {name: 'Bind', maxBody: LARGE}],
  [Frontend.FunctionCall, {name: 'FunctionCall', maxBody: LARGE}],
  [Frontend.CopyData, {name: 'CopyData', maxBody: LARGE}],
  [Frontend.Describe, {name: 'Describe', maxBody: SMALL_MESSAGE_LIMIT}],
  [Frontend.Close, {name: 'Close', maxBody: SMALL_MESSAGE_LIMIT}],
  [Frontend.Execute, {name: 'Execute', maxBody: SMALL_MESSAGE_LIMIT}],
  [Frontend.CopyFail, {name: 'CopyFail', maxBody: SMALL_MESSAGE_LIMIT}],
  [Frontend.Sync, {name: 'Sync', maxBody: EMPTY}],
  [Frontend.Flush, {name: 'Flush', maxBody: EMPTY}],
  [Frontend.Terminate, {name: 'Terminate', maxBody: EMPTY}],
  [Frontend.CopyDone, {name: 'CopyDone', maxBody: EMPTY}],
  // Its size before authentication is the framer's cap then (PG_MAX_AUTH_TOKEN_LENGTH).
  [Frontend.Password, {name: 'password', maxBody: LARGE}],
])

/**
 * A ready session reads what PostgreSQL's does; COPY messages are among them because a client may
 * send its data before the server has said the COPY started (the server then ignores them).
 */
const SESSION = new Set<number>([
  Frontend.Query,
  Frontend.Parse,
  Frontend.Bind,
  Frontend.Describe,
  Frontend.Execute,
  Frontend.Close,
  Frontend.Sync,
  Frontend.Flush,
  Frontend.FunctionCall,
  Frontend.Terminate,
  Frontend.CopyData,
  Frontend.CopyDone,
  Frontend.CopyFail,
])
/** Terminate too: the tunnel ends the session on it, as it would after the COPY. */
const COPY_IN = new Set<number>([Frontend.CopyData, Frontend.CopyDone, Frontend.CopyFail, Frontend.Flush, Frontend.Sync, Frontend.Terminate])
const AUTHENTICATION = new Set<number>([Frontend.Password])

/**
 * Throws a ProtocolError (08P01) when a message with this header cannot be read in `phase`: its
 * type is not one the phase admits, or its length is not one its type allows. `length` is the
 * header's length field (body + 4), already known to be at least 4.
 */
export function checkFrontendHeader(phase: FrontendPhase, code: number, length: number): void {
  switch (phase) {
    case 'session':
      if (!SESSION.has(code)) throw new ProtocolError(`unknown frontend message type ${codeName(code)} (declaring ${length - 4} bytes, which were not read)`)
      break
    case 'copy-in':
      if (!COPY_IN.has(code)) throw new ProtocolError(`${codeName(code)} during COPY FROM STDIN: end the COPY with CopyDone or CopyFail first`)
      break
    case 'authentication':
      if (!AUTHENTICATION.has(code)) throw new ProtocolError(`expected a password message during authentication, got ${codeName(code)}`)
      break
    case 'login':
      throw new ProtocolError(`unexpected message ${codeName(code)} before authentication completed: wait for ReadyForQuery`)
    case 'closed':
      throw new ProtocolError(`message ${codeName(code)} after the connection ended`)
  }
  const {name, maxBody} = MESSAGES.get(code)!
  const body = length - 4
  if (body <= maxBody) return
  if (maxBody === EMPTY) throw new ProtocolError(`invalid length ${length} for a ${name} message (${codeName(code)}): it has no body, so its length is always 4`)
  throw new ProtocolError(`a ${name} message (${codeName(code)}) of ${body} bytes: PostgreSQL allows at most ${SMALL_MESSAGE_LIMIT} bytes for it`)
}
