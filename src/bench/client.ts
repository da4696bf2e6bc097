/**
 * The benchmark's own PostgreSQL client for the large-result and idle-connection figures. It logs
 * in with the tunnel's upstream code (`connectUpstream`: SCRAM, MD5 or cleartext) and then only
 * walks message headers, counting rows and bytes without decoding values, so that the client costs
 * as little CPU as possible and the figure measures the path, not the client.
 */
import type net from 'node:net'
import {decodeNotice} from '../wire/backend.js'
import {encodeQuery} from '../wire/frontend.js'
import {connectUpstream, type UpstreamSession} from '../proxy/upstream.js'

export interface Endpoint {
  host: string
  port: number
  database: string
  user: string
  password: string
  /** `require`: the path takes TLS only (libpq's sslmode; the certificate is not checked, as there). */
  sslmode?: 'require'
}

export async function connect(ep: Endpoint): Promise<UpstreamSession> {
  return connectUpstream(
    {host: ep.host, port: ep.port, database: ep.database, user: ep.user, password: ep.password, tls: ep.sslmode ?? 'disable', connectTimeoutMs: 30_000},
    {application_name: 'dbgate-bench'},
  )
}

export interface StreamResult {
  /** DataRow or CopyData messages received. */
  rows: number
  /** Every byte received from sending the query to ReadyForQuery. */
  bytes: number
  seconds: number
}

const DATA_ROW = 0x44
const COPY_DATA = 0x64
const ERROR = 0x45
const READY = 0x5a

/** Sends one simple query and counts what comes back until ReadyForQuery. */
export function streamQuery(session: UpstreamSession, sql: string): Promise<StreamResult> {
  const socket: net.Socket = session.socket
  return new Promise((resolve, reject) => {
    const header = Buffer.alloc(5)
    let headerFill = 0
    let skip = 0
    let code = 0
    let rows = 0
    let bytes = 0
    let errorBody: Buffer[] | undefined
    let failed: Error | undefined
    const started = process.hrtime.bigint()
    const finish = (error?: Error) => {
      socket.off('data', onData)
      socket.off('close', onClose)
      if (error) reject(error)
      else resolve({rows, bytes, seconds: Number(process.hrtime.bigint() - started) / 1e9})
    }
    const onClose = () => finish(new Error('the server closed the connection during the query'))
    const onData = (chunk: Buffer) => {
      bytes += chunk.length
      let i = 0
      while (i < chunk.length) {
        if (skip > 0) {
          const n = Math.min(skip, chunk.length - i)
          if (errorBody) errorBody.push(chunk.subarray(i, i + n))
          i += n
          skip -= n
          if (skip === 0) {
            if (errorBody) {
              failed ??= new Error(`the server answered with an error: ${decodeNotice(Buffer.concat(errorBody)).message}`)
              errorBody = undefined
            }
            if (code === READY) return finish(failed)
          }
          continue
        }
        const n = Math.min(5 - headerFill, chunk.length - i)
        chunk.copy(header, headerFill, i, i + n)
        headerFill += n
        i += n
        if (headerFill < 5) break
        headerFill = 0
        code = header[0]!
        skip = header.readInt32BE(1) - 4
        if (code === DATA_ROW || code === COPY_DATA) rows++
        else if (code === ERROR) errorBody = []
        if (skip === 0 && code === READY) return finish(failed)
      }
    }
    socket.on('data', onData)
    socket.on('close', onClose)
    if (session.leftover.length > 0) onData(session.leftover)
    socket.write(encodeQuery(sql))
  })
}

/** Ends a session politely (Terminate) and waits for the socket to close. */
export function terminate(session: UpstreamSession): Promise<void> {
  return new Promise((resolve) => {
    const s = session.socket
    if (s.destroyed) return resolve()
    s.once('close', () => resolve())
    s.end(Buffer.from([0x58, 0, 0, 0, 4]))
    setTimeout(() => {
      s.destroy()
      resolve()
    }, 2000).unref()
  })
}

/** Opens `count` sessions, `concurrency` at a time. On failure, closes what it opened and throws. */
export async function openMany(ep: Endpoint, count: number, concurrency = 16): Promise<UpstreamSession[]> {
  const sessions: UpstreamSession[] = []
  let next = 0
  let failure: Error | undefined
  const worker = async () => {
    while (next < count && !failure) {
      next++
      try {
        sessions.push(await connect(ep))
      } catch (error) {
        failure ??= error as Error
      }
    }
  }
  await Promise.all(Array.from({length: Math.min(concurrency, count)}, worker))
  if (failure) {
    await closeMany(sessions)
    throw failure
  }
  return sessions
}

export async function closeMany(sessions: UpstreamSession[]): Promise<void> {
  await Promise.all(sessions.map(terminate))
}
