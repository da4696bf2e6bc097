/**
 * Cancel requests across replicas (`server.peers`). A CancelRequest is a new connection, so behind a
 * load balancer it may reach a replica that did not issue its key. That replica passes it on to
 * every peer as a PEER_CANCEL_REQUEST: the same 16 bytes under a request code of dbgate's own,
 * which a peer acts on for its own sessions and never passes on again, so a key no replica issued
 * costs one connection per peer and no more.
 *
 * It needs no secret between replicas: it carries only what a CancelRequest carries, and sent
 * straight to the peer it would do the same.
 */
import {lookup} from 'node:dns/promises'
import net from 'node:net'
import {PEER_CANCEL_REQUEST} from '../wire/codes.js'

export interface PeerAddress {
  host: string
  port: number
}

export interface PeerCancelsOptions {
  peers: readonly PeerAddress[]
  /** Where failures and the rate limit are reported (the gateway's repeat-limited log). */
  report: (level: 'info' | 'warn', kind: string, message: string) => void
  /** Most cancel requests passed on per second, over a burst of `burst` (a stranger can send any number). */
  perSecond?: number
  burst?: number
  /** How long one peer may take to accept the connection. */
  connectTimeoutMs?: number
  now?: () => number
  resolve?: (host: string) => Promise<string[]>
}

export function encodePeerCancel(processId: number, secretKey: number): Buffer {
  const b = Buffer.alloc(16)
  b.writeInt32BE(16, 0)
  b.writeInt32BE(PEER_CANCEL_REQUEST, 4)
  b.writeInt32BE(processId, 8)
  b.writeInt32BE(secretKey, 12)
  return b
}

/** Every address of a name, so one entry can be a Kubernetes headless Service (a pod per address). */
async function resolveAll(host: string): Promise<string[]> {
  if (net.isIP(host)) return [host]
  return (await lookup(host, {all: true})).map((a) => a.address)
}

export class PeerCancels {
  private tokens: number
  private last: number
  private readonly perSecond: number
  private readonly burst: number
  private readonly now: () => number
  private readonly resolve: (host: string) => Promise<string[]>

  constructor(private readonly options: PeerCancelsOptions) {
    this.perSecond = options.perSecond ?? 20
    this.burst = options.burst ?? 100
    this.now = options.now ?? Date.now
    this.resolve = options.resolve ?? resolveAll
    this.tokens = this.burst
    this.last = this.now()
  }

  /** Passes a key this replica did not issue on to every peer; resolves once each has taken it or failed. */
  async forward(processId: number, secretKey: number): Promise<void> {
    if (!this.take()) {
      this.options.report('warn', 'cancel requests not passed on to peers', `a cancel request with a key this replica did not issue was not passed on to its peers: more than ${this.perSecond} a second (a burst of ${this.burst}) arrived`)
      return
    }
    const packet = encodePeerCancel(processId, secretKey)
    await Promise.all(
      this.options.peers.map(async (peer) => {
        let addresses: string[]
        try {
          addresses = await this.resolve(peer.host)
        } catch (e) {
          this.options.report('warn', 'peers not resolved', `could not pass a cancel request on to the peer ${peer.host}:${peer.port}: ${(e as Error).message}`)
          return
        }
        await Promise.all(addresses.map((address) => this.send(address, peer, packet)))
      }),
    )
  }

  private take(): boolean {
    const t = this.now()
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) / 1000) * this.perSecond)
    this.last = t
    if (this.tokens < 1) return false
    this.tokens -= 1
    return true
  }

  private send(address: string, peer: PeerAddress, packet: Buffer): Promise<void> {
    return new Promise((done) => {
      const socket = net.connect({host: address, port: peer.port})
      const timer = setTimeout(() => fail(new Error(`no connection within ${this.options.connectTimeoutMs ?? 2000} ms`)), this.options.connectTimeoutMs ?? 2000)
      const fail = (e: Error) => {
        clearTimeout(timer)
        socket.destroy()
        this.options.report('warn', 'peers not reached', `could not pass a cancel request on to the peer ${address}:${peer.port} (server.peers: ${peer.host}:${peer.port}): ${e.message}`)
        done()
      }
      socket.once('error', fail)
      socket.once('connect', () => {
        clearTimeout(timer)
        socket.off('error', fail)
        socket.on('error', () => {})
        socket.end(packet)
        done()
      })
    })
  }
}
