/**
 * The tunnel's own connection for reading the catalog, separate from every client session so that
 * discovery never runs inside (or waits behind) a user's transaction.
 *
 * It speaks the protocol with the tunnel's own pieces (the upstream login every session uses, the
 * framer, simple Query): a catalog read is a handful of text queries, and a client library for
 * them (node-postgres) would stay in every tunnel process for its lifetime (~2 MB of heap).
 */
import type net from 'node:net'
import {connectUpstream, UpstreamError, type UpstreamTarget} from '../proxy/upstream.js'
import {Backend} from '../wire/codes.js'
import {decodeDataRow, decodeNotice, decodeRowDescription} from '../wire/backend.js'
import {Framer, type Frame} from '../wire/framer.js'
import {encodeQuery} from '../wire/frontend.js'
import type {FieldDescription} from '../wire/fields.js'
import type {CatalogQuery, Row} from './catalog.js'

export interface ClosableCatalogQuery extends CatalogQuery {
  close(): Promise<void>
}

/**
 * `run` called for one query at a time, in order: discovery asks several at once, and one
 * connection runs one query at a time.
 */
export function oneAtATime(run: CatalogQuery): CatalogQuery {
  let queue: Promise<unknown> = Promise.resolve()
  return (sql) => {
    const next = queue.then(() => run(sql))
    queue = next.catch(() => {})
    return next
  }
}

const BOOL = 16
const INT8 = 20
const INT2 = 21
const INT4 = 23
const OID = 26
const FLOAT4 = 700
const FLOAT8 = 701
const TERMINATE = Buffer.from([0x58, 0, 0, 0, 4])
/**
 * How long a catalog read waits for a lock before it fails. pg_get_viewdef locks every relation a
 * view reads, so a read waits behind any transaction holding an ACCESS EXCLUSIVE lock on one of
 * them (ALTER TABLE, TRUNCATE, CREATE OR REPLACE VIEW, LOCK TABLE), the session's own included,
 * which may in turn be waiting for this read. A failed read leaves masking and policy failing
 * closed (names unknown, views untrusted) and the next read tries again.
 */
export const CATALOG_LOCK_TIMEOUT_MS = 1000
/** The catalog's rows are small, but a view's definition is unbounded: a generous cap, not the clients' one. */
const MAX_MESSAGE = 256 * 1024 * 1024

/**
 * A column's text value as the catalog readers take it (they were written against node-postgres's
 * defaults): booleans and 2- and 4-byte integers, oids and floats as numbers, everything else (int8
 * included) as text.
 */
export function catalogValue(typeOid: number, text: string): unknown {
  switch (typeOid) {
    case BOOL:
      return text === 't'
    case INT2:
    case INT4:
    case OID:
      return Number.parseInt(text, 10)
    case FLOAT4:
    case FLOAT8:
      return Number.parseFloat(text)
    case INT8:
    default:
      return text
  }
}

/** One logged-in upstream session that runs simple queries, one at a time. */
class CatalogSession {
  private readonly framer = new Framer({maxMessageSize: MAX_MESSAGE, limitName: 'the catalog connection (256 MiB per message)'})
  private pending: {fields: FieldDescription[]; rows: Row[]; error?: Error; resolve(rows: Row[]): void; reject(e: Error): void} | undefined
  private failure: Error | undefined

  constructor(private readonly socket: net.Socket, leftover: Buffer) {
    socket.on('data', (chunk: Buffer) => this.read(chunk))
    socket.on('error', (e) => this.fail(new UpstreamError(`the catalog connection failed: ${e.message}`, '08006')))
    socket.on('close', () => this.fail(new UpstreamError('the upstream closed the catalog connection', '08006')))
    if (leftover.length > 0) this.read(leftover)
  }

  get usable(): boolean {
    return this.failure === undefined
  }

  query(sql: string): Promise<Row[]> {
    if (this.failure) return Promise.reject(this.failure)
    return new Promise((resolve, reject) => {
      this.pending = {fields: [], rows: [], resolve, reject}
      this.socket.write(encodeQuery(sql))
    })
  }

  close(): void {
    this.fail(new UpstreamError('the catalog connection was closed', '08006'))
    if (!this.socket.destroyed) this.socket.end(TERMINATE)
    this.socket.destroy()
  }

  private read(chunk: Buffer): void {
    try {
      this.framer.push(chunk, (f) => this.frame(f))
    } catch (error) {
      this.fail(new UpstreamError(`the catalog connection broke: ${(error as Error).message}`, '08P01'))
      this.socket.destroy()
    }
  }

  private frame(f: Frame): void {
    const p = this.pending
    switch (f.code) {
      case Backend.NoticeResponse:
      case Backend.ParameterStatus:
      case Backend.NotificationResponse:
        return
      case Backend.RowDescription:
        if (p) p.fields = decodeRowDescription(f.body)
        return
      case Backend.DataRow: {
        if (!p) break
        const values = decodeDataRow(f.body)
        const row: Row = {}
        for (let i = 0; i < p.fields.length; i++) {
          const v = values[i]
          row[p.fields[i]!.name] = v === null || v === undefined ? null : catalogValue(p.fields[i]!.typeOid, v.toString('utf8'))
        }
        p.rows.push(row)
        return
      }
      case Backend.CommandComplete:
      case Backend.EmptyQueryResponse:
        return
      case Backend.ErrorResponse: {
        if (!p) break
        const e = decodeNotice(f.body)
        // The server's own words, as a driver reports them.
        p.error ??= Object.assign(new Error(e.message ?? 'the catalog query failed'), {code: e.code})
        return
      }
      case Backend.ReadyForQuery:
        if (!p) break
        this.pending = undefined
        if (p.error) p.reject(p.error)
        else p.resolve(p.rows)
        return
    }
    // Anything else (COPY, a reply with no query asked) is not something a catalog read can meet.
    this.fail(new UpstreamError(`unexpected message ${String.fromCharCode(f.code)} on the catalog connection`, '08P01'))
    this.socket.destroy()
  }

  private fail(error: Error): void {
    this.failure ??= error
    const p = this.pending
    this.pending = undefined
    p?.reject(error)
  }
}

/**
 * A query function over one lazily opened connection, reopened after a failure (the connection is
 * dropped after any failed query). TLS as for the tunnel's sessions: `prefer` falls back to plain
 * text only when the server offers no TLS at all, as libpq does.
 */
export function catalogQueryFor(target: UpstreamTarget): ClosableCatalogQuery {
  let session: Promise<CatalogSession> | undefined
  const connect = async (): Promise<CatalogSession> => {
    // The catalog's queries name pg_catalog's relations and functions unqualified. A search_path
    // the role or database was given (`ALTER ROLE current_user SET search_path = evil, pg_catalog`,
    // which any role may do for itself) would have them read a client's look-alikes instead; a
    // startup parameter overrides those settings. pg_temp last: it is otherwise searched first.
    const s = await connectUpstream(target, {application_name: 'dbgate masking discovery', client_encoding: 'UTF8', statement_timeout: '30000', lock_timeout: String(CATALOG_LOCK_TIMEOUT_MS), search_path: 'pg_catalog, pg_temp'})
    return new CatalogSession(s.socket, s.leftover)
  }
  const query = oneAtATime((sql) => runOne(sql))
  const runOne = async (sql: string): Promise<Row[]> => {
    if (session) {
      const known = await session.catch(() => undefined)
      if (!known?.usable) session = undefined
    }
    session ??= connect()
    const s = session
    try {
      return await (await s).query(sql)
    } catch (error) {
      if (session === s) session = undefined
      await s.then((x) => x.close()).catch(() => {})
      throw error
    }
  }
  return Object.assign(query, {
    async close() {
      const s = session
      session = undefined
      if (s) await s.then((x) => x.close()).catch(() => {})
    },
  })
}
