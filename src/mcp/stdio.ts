/**
 * The agent's side of `dbgate mcp`: JSON-RPC messages over stdin/stdout, one per line, as the MCP
 * stdio transport says. The SDK's own transport drops every line that is not one message its schema
 * takes (a batch, `params` a string or an array, an id that is an object, a line that is not JSON)
 * without a word: the agent waited for an answer that never came, and a `tools/call` carrying
 * `drop table secrets` that way left no trace. Here each such line is answered with what is wrong,
 * a `tools/call` in it is handed to `onrefused` (which records it) first, and a batch's messages are
 * taken one by one, as the remote MCP endpoint takes them.
 */
import type {Readable, Writable} from 'node:stream'
import type {Transport} from '@modelcontextprotocol/sdk/shared/transport.js'
import {ErrorCode, JSONRPCMessageSchema, type JSONRPCMessage} from '@modelcontextprotocol/sdk/types.js'

/** The longest line taken, as the SDK's stdio transport: far more than a call of 1 Mi characters of SQL needs. */
export const MAX_LINE_BYTES = 10 * 1024 * 1024

/** The most messages one batch may hold, as the SDK's Streamable HTTP server takes. */
export const MAX_BATCH = 100

/**
 * The header under which `dbgate mcp` in front of a gateway sends a tools/call it refused on the
 * agent's machine, with what was wrong (URI-encoded): the gateway records the call as refused and
 * runs none of it. It is the only place that records, so without it the call left no trace.
 */
export const REFUSED_BY_MCP_HEADER = 'x-dbgate-refused-by-mcp'

const TOO_LONG = `a line over ${MAX_LINE_BYTES} bytes, the most one may hold (nothing of it was read)`

const EXAMPLE = '{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "query", "arguments": {"sql": "select 1"}}}'

/** What is wrong with a value that is not one JSON-RPC message, in a line the agent can act on. */
export function notAMessage(value: unknown): string {
  const parsed = JSONRPCMessageSchema.safeParse(value)
  if (parsed.success) return ''
  const m = typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined
  const problems: string[] = []
  if (!m) problems.push(`it is ${Array.isArray(value) ? 'an array' : value === null ? 'null' : `a ${typeof value}`}, not an object`)
  else {
    if (m.jsonrpc !== '2.0') problems.push('jsonrpc must be "2.0"')
    if ('id' in m && typeof m.id !== 'string' && !(typeof m.id === 'number' && Number.isInteger(m.id))) problems.push('id must be a string or an integer')
    if ('method' in m && typeof m.method !== 'string') problems.push('method must be a string')
    if ('params' in m && (typeof m.params !== 'object' || m.params === null || Array.isArray(m.params))) problems.push('params must be an object')
    if (!('method' in m) && !('result' in m) && !('error' in m)) problems.push('it has no method')
  }
  if (problems.length === 0) problems.push(parsed.error.issues.slice(0, 3).map((i) => `${i.path.map(String).join('.') || 'the message'}: ${i.message}`).join('; '))
  return problems.join('; ')
}

/** The id to answer a refused message with: its own when it is one JSON-RPC allows, else none. */
function answerId(value: unknown): string | number | undefined {
  const id = typeof value === 'object' && value !== null ? (value as {id?: unknown}).id : undefined
  return typeof id === 'string' || (typeof id === 'number' && Number.isInteger(id)) ? id : undefined
}

export class AgentStdioTransport implements Transport {
  onmessage?: (message: JSONRPCMessage) => void
  onerror?: (error: Error) => void
  onclose?: () => void
  /**
   * A message the server cannot take (undefined for a line that is none), before it is answered:
   * `what` says what it is and what is wrong. Awaited, so that what records it has done so before
   * the agent learns of the refusal.
   */
  onrefused?: (value: unknown, what: string) => Promise<void> | void

  private pending: Buffer[] = []
  private pendingBytes = 0
  /** Past the line limit: the rest of the line is dropped, up to its newline. */
  private skipping = false
  private closed = false
  /** The ids of the agent's requests not yet answered. */
  private readonly inFlight = new Set<string | number>()

  constructor(
    private readonly stdin: Readable = process.stdin,
    private readonly stdout: Writable = process.stdout,
  ) {}

  private readonly ondata = (chunk: Buffer) => {
    let start = 0
    for (let nl = chunk.indexOf(0x0a); nl !== -1; nl = chunk.indexOf(0x0a, start)) {
      const piece = chunk.subarray(start, nl)
      start = nl + 1
      if (this.skipping) {
        this.skipping = false
        this.pending = []
        this.pendingBytes = 0
        continue
      }
      const tooLong = this.pendingBytes + piece.length > MAX_LINE_BYTES
      const line = tooLong ? undefined : this.pending.length ? Buffer.concat([...this.pending, piece]) : piece
      this.pending = []
      this.pendingBytes = 0
      if (line) this.line(line.toString('utf8').replace(/\r$/, ''))
      else void this.refuse(undefined, TOO_LONG)
    }
    if (start >= chunk.length || this.skipping) return
    const rest = chunk.subarray(start)
    if (this.pendingBytes + rest.length > MAX_LINE_BYTES) {
      this.pending = []
      this.pendingBytes = 0
      this.skipping = true
      void this.refuse(undefined, TOO_LONG)
      return
    }
    this.pending.push(rest)
    this.pendingBytes += rest.length
  }

  private readonly onstdinerror = (error: Error) => this.onerror?.(error)

  private line(text: string): void {
    if (text.trim() === '') return
    let value: unknown
    try {
      value = JSON.parse(text)
    } catch (e) {
      void this.refuse(undefined, `a line that is not JSON (${(e as Error).message})`, ErrorCode.ParseError)
      return
    }
    if (!Array.isArray(value)) return this.one(value)
    if (value.length === 0 || value.length > MAX_BATCH) {
      // Refused whole, each message in it answered (and a tool call recorded) as refused.
      const why = value.length === 0 ? 'an empty batch' : `a batch of ${value.length} messages, past the ${MAX_BATCH} one may hold`
      if (value.length === 0) void this.refuse(undefined, why)
      for (const item of value) void this.refuse(item, why)
      return
    }
    for (const item of value) this.one(item)
  }

  private one(value: unknown): void {
    const parsed = JSONRPCMessageSchema.safeParse(value)
    if (!parsed.success) return void this.refuse(value, `a message that is not one JSON-RPC 2.0 message MCP takes (${notAMessage(value)})`)
    const m = parsed.data as {id?: string | number; method?: unknown}
    if (m.id !== undefined && typeof m.method === 'string') {
      // The SDK keeps one cancellation per id: a second request with the id of one still running
      // took it over, and the agent's notifications/cancelled could no longer stop the first.
      if (this.inFlight.has(m.id)) return void this.refuse(value, `a request with the id ${JSON.stringify(m.id)}, which a request still in flight has (give each request an id of its own)`)
      this.inFlight.add(m.id)
    }
    this.onmessage?.(parsed.data)
    // A cancelled request is never answered: its id is the agent's to use again.
    if (m.method === 'notifications/cancelled') this.inFlight.delete((parsed.data as {params?: {requestId?: string | number}}).params?.requestId ?? '')
  }

  /** Answers what the server cannot take; `what` names it as the agent's message says it. */
  private async refuse(value: unknown, what: string, code: number = ErrorCode.InvalidRequest): Promise<void> {
    try {
      await this.onrefused?.(value, what)
    } catch (e) {
      this.onerror?.(e instanceof Error ? e : new Error(String(e)))
    }
    // A response or notification the server cannot take needs no answer; a request does, and so
    // does a message that is not even that (its sender cannot tell which it was).
    const m = typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined
    if (m && !('id' in m) && typeof m.method === 'string') return
    if (m && ('result' in m || 'error' in m) && !('method' in m)) return
    const id = answerId(value)
    const message = `dbgate: this server received ${what}. Send one JSON-RPC message per line, such as ${EXAMPLE}.`
    // Written as is: the answer to a refused request leaves a request of the same id in flight.
    await this.write({jsonrpc: '2.0', ...(id === undefined ? {} : {id}), error: {code, message}} as JSONRPCMessage).catch(() => {})
  }

  async start(): Promise<void> {
    this.stdin.on('data', this.ondata)
    this.stdin.on('error', this.onstdinerror)
  }

  send(message: JSONRPCMessage): Promise<void> {
    const answered = message as {id?: string | number; result?: unknown; error?: unknown}
    if (answered.id !== undefined && ('result' in answered || 'error' in answered)) this.inFlight.delete(answered.id)
    return this.write(message)
  }

  private write(message: JSONRPCMessage): Promise<void> {
    if (this.closed) return Promise.resolve()
    return new Promise((resolve) => {
      if (this.stdout.write(`${JSON.stringify(message)}\n`)) resolve()
      else this.stdout.once('drain', resolve)
    })
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.stdin.off('data', this.ondata)
    this.stdin.off('error', this.onstdinerror)
    if (this.stdin.listenerCount('data') === 0) this.stdin.pause()
    this.pending = []
    this.onclose?.()
  }
}
