import net from 'node:net'
import {serialize} from 'pg-protocol'
import {decodeAuth, decodeNotice, type NoticeFields} from '../../src/wire/backend.js'
import {Framer} from '../../src/wire/framer.js'
import {encodeStartup} from '../../src/wire/frontend.js'
import {ScramClient} from '../../src/wire/scram.js'
import {waitFor} from './wait.js'

export interface RawMessage {
  code: string
  body: Buffer
}

/**
 * A hand-driven protocol client: it logs in with SCRAM, then sends whatever bytes a test wants and
 * records every backend message, so tests can check exact protocol behaviour.
 */
export class RawClient {
  readonly messages: RawMessage[] = []
  private readonly framer = new Framer({maxMessageSize: 1 << 30})
  private waiters: (() => void)[] = []
  closed = false

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk) => {
      this.framer.push(chunk, (f) => this.messages.push({code: String.fromCharCode(f.code), body: Buffer.from(f.body)}))
      this.wake()
    })
    socket.on('close', () => {
      this.closed = true
      this.wake()
    })
    socket.on('error', () => {})
  }

  private wake() {
    for (const w of this.waiters.splice(0)) w()
  }

  static async connect(port: number, opts: {password: string; database: string; params?: Record<string, string>}): Promise<RawClient> {
    const socket = net.connect({host: '127.0.0.1', port})
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve())
      socket.once('error', reject)
    })
    const c = new RawClient(socket)
    socket.write(encodeStartup({user: 'raw', database: opts.database, ...opts.params}))
    const scram = new ScramClient(opts.password)
    for (;;) {
      const m = await c.next()
      if (m.code === 'E') throw new Error(decodeNotice(m.body).message)
      if (m.code === 'R') {
        const a = decodeAuth(m.body)
        if (a.kind === 'sasl') socket.write(serialize.sendSASLInitialResponseMessage('SCRAM-SHA-256', scram.firstMessage()))
        if (a.kind === 'sasl-continue') socket.write(serialize.sendSCRAMClientFinalMessage(scram.finalMessage(a.data.toString())))
        if (a.kind === 'sasl-final') scram.verifyFinal(a.data.toString())
      }
      if (m.code === 'Z') return c
    }
  }

  /** Connects without logging in, for tests of what happens before authentication. */
  static async open(port: number): Promise<RawClient> {
    const socket = net.connect({host: '127.0.0.1', port})
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve())
      socket.once('error', reject)
    })
    return new RawClient(socket)
  }

  private cursor = 0

  /** The next message not yet consumed by `next`. */
  async next(timeoutMs = 10_000): Promise<RawMessage> {
    const deadline = Date.now() + timeoutMs
    while (this.cursor >= this.messages.length) {
      if (this.closed) throw new Error('connection closed')
      if (Date.now() > deadline) throw new Error('timed out waiting for a message')
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve)
        setTimeout(resolve, 100)
      })
    }
    return this.messages[this.cursor++]!
  }

  /** Messages up to and including the next ReadyForQuery. */
  async untilReady(): Promise<RawMessage[]> {
    const out: RawMessage[] = []
    for (;;) {
      const m = await this.next()
      out.push(m)
      if (m.code === 'Z') return out
    }
  }

  async waitClosed(timeoutMs = 10_000): Promise<void> {
    await waitFor(() => this.closed, 'the connection is closed', {timeoutMs})
  }

  send(...bufs: Buffer[]): void {
    this.socket.write(Buffer.concat(bufs))
  }

  end(): void {
    this.socket.destroy()
  }
}

export function errorOf(msgs: RawMessage[]): NoticeFields | undefined {
  const e = msgs.find((m) => m.code === 'E')
  return e ? decodeNotice(e.body) : undefined
}

export function codes(msgs: RawMessage[]): string {
  return msgs.map((m) => m.code).join('')
}
