import type net from 'node:net'
import {MemorySocket} from '../../src/dev/memory-socket.js'
import {ClientConnection, type ConnectionEnv} from '../../src/proxy/connection.js'
import type {ProxyHooks} from '../../src/proxy/seam.js'
import {Framer} from '../../src/wire/framer.js'
import {makeScramVerifier} from '../../src/wire/scram.js'

export {MemorySocket}

/** The message type letters in a buffer of backend or frontend messages. */
export function codesOf(bytes: Buffer): string {
  let out = ''
  new Framer({maxMessageSize: 1 << 30}).push(bytes, (f) => (out += String.fromCharCode(f.code)))
  return out
}

export interface MemoryConnection {
  conn: ClientConnection
  client: MemorySocket
  upstream: MemorySocket
  logs: string[]
  /** Feeds client bytes in the given chunks. */
  fromClient(chunks: Buffer[]): void
  fromServer(chunks: Buffer[]): void
}

/** What a test connection runs with: a local target, a fixed password, no cancels, no logs. */
export function connectionEnv(hooks: ProxyHooks = {}): ConnectionEnv {
  return {
    target: {host: '127.0.0.1', port: 5432, database: 'db', user: 'u', tls: 'disable'},
    auth: {method: 'cleartext', secret: 's', verifier: makeScramVerifier('s')},
    hooks,
    maxMessageSize: 1 << 24,
    applicationName: () => 'test',
    issueCancelKey: () => ({processId: 1, secretKey: 2}),
    releaseCancelKey: () => {},
    cancelByKey: () => {},
    log: () => {},
  }
}

/**
 * A ready ClientConnection between two in-memory sockets: the tests play both the client and the
 * server byte by byte, and see exactly what the tunnel forwards each way.
 */
export function memoryConnection(hooks: ProxyHooks = {}, client: MemorySocket = new MemorySocket()): MemoryConnection {
  const upstream = new MemorySocket()
  const logs: string[] = []
  const conn = ClientConnection.attached(
    client as unknown as net.Socket,
    {...connectionEnv(hooks), maxMessageSize: 1 << 20, log: (level, message) => logs.push(`${level}: ${message}`)},
    {socket: upstream as unknown as net.Socket, parameters: [['client_encoding', 'UTF8'], ['standard_conforming_strings', 'on']], processId: 1, secretKey: 2, status: 'I', notices: [], leftover: Buffer.alloc(0), encrypted: false},
    {user: 'u', database: 'db'},
  )
  client.take()
  return {
    conn,
    client,
    upstream,
    logs,
    fromClient: (chunks) => {
      for (const c of chunks) client.emit('data', Buffer.from(c))
    },
    fromServer: (chunks) => {
      for (const c of chunks) upstream.emit('data', Buffer.from(c))
    },
  }
}

/** Every way to cut `bytes` into chunks that the tests try: whole, in two at each boundary, and byte by byte. */
export function everySplit(bytes: Buffer): Buffer[][] {
  const out: Buffer[][] = [[bytes]]
  for (let k = 1; k < bytes.length; k++) out.push([bytes.subarray(0, k), bytes.subarray(k)])
  out.push(Array.from(bytes, (b) => Buffer.from([b])))
  return out
}

/** Cuts `bytes` at random places (pieces of about `mean` bytes), now and then inside a message's header. */
export function randomCuts(bytes: Buffer, next: () => number, mean: number): Buffer[] {
  const out: Buffer[] = []
  for (let at = 0; at < bytes.length; ) {
    const n = 1 + Math.floor(next() * 2 * mean)
    out.push(bytes.subarray(at, at + n))
    at += n
  }
  return out
}
