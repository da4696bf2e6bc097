/**
 * Queries of the tunnel's own, run in a client's server session while nothing of the client's is
 * in flight: what an approval shows a reviewer of the session (a custom setting an RLS policy reads
 * with current_setting(), the role SET ROLE put in place, the types a Parse declared) is what the
 * server answers, never what the client's text claims. They go as extended-protocol messages under
 * names of their own, closed after use, so the client's unnamed statement and portal stay as they
 * were. At a Sync boundary a Sync follows them (no transaction is left open while a statement
 * waits for its reviewer), then the statements' Close again and a second Sync: an error at Bind or
 * Execute (a cancel, a timeout) skips the first Closes, and the session would keep a prepared
 * statement of the tunnel's that the client could see and run. In the middle of the client's
 * batch (a held Bind after its Parse) a Flush does, and they run in the batch's transaction. Their replies are taken here and never reach
 * the client or the protocol state. A reply that does not fit, an error in the middle of the
 * client's batch (the server would skip the client's messages up to its Sync), or a transaction
 * status they changed ends the connection.
 */
import {randomBytes} from 'node:crypto'
import {decodeDataRow, decodeNotice} from '../wire/backend.js'
import {Backend, Frontend, codeName} from '../wire/codes.js'
import {frameByte, type Frame} from '../wire/framer.js'
import {encodeBindNoParams, encodeClose, encodeExecute, encodeParse} from '../wire/frontend.js'
import type {PgNoticeFields} from '../wire/fields.js'
import {ProtocolDesync} from './protocol-state.js'

/**
 * The tunnel's own query failed inside the client's transaction or batch (cancelled by the
 * client's Ctrl-C, a lock_timeout): the server aborted a transaction in which nothing of the
 * client's failed, or skips the rest of its batch, and the client would go on unaware. The
 * connection ends with `notice`.
 */
export class OwnQueryFailedTransaction extends Error {
  override name = 'OwnQueryFailedTransaction'
  constructor(readonly notice: PgNoticeFields) {
    super(notice.message)
  }
}

/** The rows of each statement, values as text. */
export type OwnResults = (string | null)[][][]

const SYNC = Buffer.from([Frontend.Sync, 0, 0, 0, 4])
const FLUSH = Buffer.from([Frontend.Flush, 0, 0, 0, 4])

export class OwnQuery {
  private readonly results: OwnResults = []
  private rows: (string | null)[][] = []
  private error: string | undefined
  private errorCode: string | undefined
  private closes = 0
  /** What the first ReadyForQuery settled, given once the second (after the cleanup's Closes) arrives. */
  private settled: (() => void) | undefined

  constructor(
    private readonly statements: readonly string[],
    /** Followed by a Sync, answered by a ReadyForQuery; else by a Flush, in the client's batch. */
    private readonly synced: boolean,
    /** The transaction status before: read-only queries leave it as it was. */
    private readonly txStatus: 'I' | 'T' | 'E',
    private readonly resolve: (results: OwnResults) => void,
    readonly reject: (error: Error) => void,
  ) {}

  /** What goes to the server. */
  messages(): Buffer[] {
    const name = `dbgate_own_${randomBytes(8).toString('hex')}`
    const out: Buffer[] = []
    for (const text of this.statements) out.push(encodeParse({name, text, paramTypes: []}), encodeBindNoParams(name, name), encodeExecute(name), encodeClose('P', name), encodeClose('S', name))
    if (!this.synced) return [...out, FLUSH]
    // A Close of a statement that is gone is answered CloseComplete too.
    return [...out, SYNC, encodeClose('S', name), SYNC]
  }

  /** Takes the frame if it answers these queries; notices, notifications and reported settings are the session's and go their usual way. */
  take(frame: Frame): boolean {
    switch (frame.code) {
      case Backend.ParseComplete:
      case Backend.BindComplete:
        return true
      case Backend.DataRow:
        this.rows.push(decodeDataRow(frame.body).map((v) => (v === null ? null : v.toString('utf8'))))
        return true
      case Backend.CommandComplete:
      case Backend.EmptyQueryResponse:
        this.results.push(this.rows)
        this.rows = []
        return true
      case Backend.CloseComplete:
        if (++this.closes === this.statements.length * 2 && !this.synced) this.resolve(this.results)
        return true
      case Backend.ErrorResponse: {
        const fields = decodeNotice(frame.body)
        this.error = fields.message
        this.errorCode = fields.code
        if (this.synced) return true
        return this.end(`in the middle of your batch of extended-protocol messages (${this.error}), where the server now skips what you sent after it up to your Sync`)
      }
      case Backend.ReadyForQuery: {
        if (!this.synced) return this.fail("the server ended the client's batch during the tunnel's own query")
        const b = frameByte(frame, 5)
        const status = b === 0x49 ? 'I' : b === 0x54 ? 'T' : 'E'
        if (status === 'E' && this.txStatus === 'T' && this.error !== undefined) return this.end(`inside your transaction (${this.error}), and the server aborted the transaction`)
        if (status !== this.txStatus) return this.fail(`the tunnel's own query left the transaction status ${status}, not ${this.txStatus}${this.error ? ` (${this.error})` : ''}`)
        if (this.settled !== undefined) {
          if (this.error !== undefined) return this.fail(`the server refused to close the tunnel's own statement (${this.error})`)
          this.settled()
          return true
        }
        const error = this.error
        const results = this.results
        this.settled = error !== undefined ? () => this.reject(new Error(`the server refused the tunnel's own query: ${error}`)) : () => this.resolve(results)
        this.error = undefined
        return true
      }
      case Backend.NoticeResponse:
      case Backend.NotificationResponse:
      case Backend.ParameterStatus:
        return false
      default:
        return this.fail(`the server sent ${codeName(frame.code)} in answer to the tunnel's own query`)
    }
  }

  /** The query failed where the client's own messages run (its transaction, its batch): the connection ends, saying so. */
  private end(where: string): never {
    const e = new OwnQueryFailedTransaction({
      severity: 'FATAL',
      code: this.errorCode ?? '25P02',
      message: `dbgate: the tunnel's query of this session's settings, run for the statement held for approval, failed ${where}; the connection was closed rather than left to go on in a state you did not see change`,
      hint: 'Reconnect and run the transaction (or the batch) again.',
    })
    this.reject(e)
    throw e
  }

  private fail(message: string): never {
    const e = new ProtocolDesync(message)
    this.reject(e)
    throw e
  }
}
