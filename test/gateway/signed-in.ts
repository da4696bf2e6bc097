import type tls from 'node:tls'
import {decodeNotice} from '../../src/wire/backend.js'
import {Framer} from '../../src/wire/framer.js'
import {encodeStartup} from '../../src/wire/frontend.js'
import {waitFor} from '../helpers/wait.js'
import {sslRequestTls} from './helpers.js'

/** A hand-driven client signed in to the gateway over TLS, that records every backend message with when it came. */
export class SignedIn {
  readonly messages: {code: string; body: Buffer; at: number}[] = []
  closed = false
  private readonly framer = new Framer({maxMessageSize: 1 << 30})

  constructor(readonly socket: tls.TLSSocket) {
    socket.on('data', (chunk: Buffer) => this.framer.push(chunk, (f) => this.messages.push({code: String.fromCharCode(f.code), body: Buffer.from(f.body), at: Date.now()})))
    socket.on('close', () => (this.closed = true))
    socket.on('error', () => {})
  }

  static async open(port: number, ca: string, user: string, token: string, applicationName?: string): Promise<SignedIn> {
    const socket = await sslRequestTls(port, ca)
    const c = new SignedIn(socket)
    socket.write(encodeStartup({user, database: 'app', ...(applicationName === undefined ? {} : {application_name: applicationName})}))
    await waitFor(() => c.count('R') > 0 || c.closed, 'the gateway asks for the token')
    const body = Buffer.concat([Buffer.from(token), Buffer.from([0])])
    const head = Buffer.alloc(5)
    head.write('p', 0)
    head.writeInt32BE(body.length + 4, 1)
    socket.write(Buffer.concat([head, body]))
    await waitFor(() => c.count('Z') > 0 || c.closed, 'the session is ready')
    if (c.closed) throw new Error(`sign-in failed: ${c.errors().join('; ')}`)
    return c
  }

  count(code: string): number {
    return this.messages.filter((m) => m.code === code).length
  }

  errors(): {code: string; message: string}[] {
    return this.messages.filter((m) => m.code === 'E').map((m) => decodeNotice(m.body)).map((n) => ({code: String(n.code), message: String(n.message)}))
  }
}
