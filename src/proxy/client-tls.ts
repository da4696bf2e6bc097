/**
 * TLS on the client side, for a listener that requires it (the gateway). What arrives first decides:
 *
 *   SSLRequest          answered 'S', then the TLS handshake on the same socket (libpq's default)
 *   0x16 (ClientHello)  PostgreSQL 17's direct TLS: the handshake at once; ALPN "postgresql" required
 *   GSSENCRequest       answered 'N' (no GSSAPI), and the client goes on to one of the above; a
 *                       second one is refused, as PostgreSQL refuses it
 *   CancelRequest       passed on as is: it carries only the cancel key, and libpq sends it in the clear
 *   PeerCancelRequest   the same, passed on by another replica (src/gateway/peer-cancels.ts)
 *   anything else       a plaintext startup: refused with a FATAL saying TLS is required, and how
 *
 * Nothing the client sends before the handshake is read as protocol: bytes that follow an
 * SSLRequest in the same packet would be taken as if they came over TLS (CVE-2021-23214's family),
 * so they close the connection.
 */
import type net from 'node:net'
import {Duplex} from 'node:stream'
import tls from 'node:tls'
import {encodeError} from '../wire/backend.js'
import {CANCEL_REQUEST, GSSENC_REQUEST, PEER_CANCEL_REQUEST, SSL_REQUEST} from '../wire/codes.js'

const TLS_HANDSHAKE_RECORD = 0x16
export const POSTGRES_ALPN = 'postgresql'

export interface ClientTlsOptions {
  /** The certificate and key in force now; called per connection, so a reload applies to new ones. */
  secureContext: () => tls.SecureContext
  /** Everything before the handshake completes must fit in this. */
  timeoutMs: number
  /** `fromPeer`: another replica passed it on, so it is not passed on again. */
  cancel: (processId: number, secretKey: number, fromPeer: boolean) => void
  /** Why a connection was turned away before TLS (the observer's sign-in failure reasons). */
  refused: (reason: 'no-tls' | 'tls-handshake', detail: string) => void
}

export type ClientTlsResult = {socket: tls.TLSSocket; direct: boolean}

/**
 * Resolves with the encrypted socket once the handshake completes, or undefined when the connection
 * was refused, was a cancel request, or went away. The raw socket is closed in every undefined case.
 */
export function acceptClientTls(raw: net.Socket, opts: ClientTlsOptions): Promise<ClientTlsResult | undefined> {
  return new Promise((resolve) => {
    let buffered: Buffer = Buffer.alloc(0)
    let settled = false
    const timer = setTimeout(() => finish(undefined, 'tls-handshake', `no TLS handshake within ${opts.timeoutMs} ms`), opts.timeoutMs)
    const finish = (result: ClientTlsResult | undefined, reason?: 'no-tls' | 'tls-handshake', detail?: string) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      raw.off('data', onData)
      if (!result) {
        if (reason) opts.refused(reason, detail ?? '')
        raw.destroy()
      }
      resolve(result)
    }
    raw.on('error', () => finish(undefined))
    raw.on('close', () => finish(undefined))

    const startTls = (transport: net.Socket | Duplex, direct: boolean) => {
      const socket = new tls.TLSSocket(transport as net.Socket, {isServer: true, secureContext: opts.secureContext(), ALPNProtocols: [POSTGRES_ALPN]})
      const failed = (e: Error) => {
        socket.destroy()
        finish(undefined, 'tls-handshake', e.message)
      }
      socket.once('error', failed)
      socket.once('secure', () => {
        socket.off('error', failed)
        // PostgreSQL 17 requires the ALPN for direct TLS, so a client of another protocol that
        // happens to speak TLS to this port is not taken for a PostgreSQL client.
        if (direct && socket.alpnProtocol !== POSTGRES_ALPN) {
          socket.destroy()
          finish(undefined, 'tls-handshake', 'direct TLS without the "postgresql" ALPN protocol')
          return
        }
        if (settled) {
          socket.destroy()
          return
        }
        settled = true
        clearTimeout(timer)
        resolve({socket, direct})
      })
    }

    let gssencAnswered = false
    const onData = (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk])
      // A GSSENCRequest is answered and what follows it in the same packet read on, here; after it
      // only the next step (SSLRequest, direct TLS) is acceptable.
      if (!gssencAnswered && buffered.length >= 8 && buffered.readInt32BE(0) === 8 && buffered.readInt32BE(4) === GSSENC_REQUEST) {
        gssencAnswered = true
        raw.write(Buffer.from('N'))
        buffered = buffered.subarray(8)
        if (buffered.length === 0) return
      }
      if (buffered[0] === TLS_HANDSHAKE_RECORD) {
        raw.off('data', onData)
        startTls(replayed(raw, buffered), true)
        return
      }
      if (buffered.length < 8) return
      const length = buffered.readInt32BE(0)
      const code = buffered.readInt32BE(4)
      if (length === 8 && code === SSL_REQUEST) {
        if (buffered.length > 8) return finish(undefined, 'no-tls', 'bytes sent after SSLRequest before the handshake')
        raw.off('data', onData)
        raw.pause()
        raw.write(Buffer.from('S'))
        startTls(raw, false)
        return
      }
      if (length === 8 && code === GSSENC_REQUEST) {
        // libpq sends one, and PostgreSQL refuses another: answering each would let a client keep a
        // connection busy before TLS for as long as it sends them.
        raw.end(encodeError({severity: 'FATAL', code: '08P01', message: 'dbgate: protocol error: more than one GSSENCRequest before TLS', hint: 'Connect with sslmode=verify-full; the gateway offers TLS, not GSSAPI encryption.'}))
        finish(undefined, 'no-tls', 'more than one GSSENCRequest')
        return
      }
      if (length === 16 && (code === CANCEL_REQUEST || code === PEER_CANCEL_REQUEST)) {
        if (buffered.length < 16) return
        opts.cancel(buffered.readInt32BE(8), buffered.readInt32BE(12), code === PEER_CANCEL_REQUEST)
        raw.end()
        finish(undefined)
        return
      }
      raw.end(
        encodeError({
          severity: 'FATAL',
          code: '28000',
          message: 'dbgate: this gateway accepts connections over TLS only',
          hint: 'Connect with sslmode=verify-full (and sslrootcert=<the gateway CA>) or sslmode=require; the password, your sign-in token, is never accepted in the clear.',
        }),
      )
      finish(undefined, 'no-tls', 'a plaintext startup packet')
    }
    raw.on('data', onData)
  })
}

/**
 * The raw socket as a stream that first yields `head` (bytes already read) and then the rest: a
 * TLSSocket over a socket with a native handle would read from the handle and lose them.
 */
function replayed(raw: net.Socket, head: Buffer): Duplex {
  const duplex = new Duplex({
    read() {
      raw.resume()
    },
    write(chunk: Buffer, _enc, cb) {
      raw.write(chunk, cb)
    },
    final(cb) {
      raw.end()
      cb()
    },
    destroy(error, cb) {
      raw.destroy()
      cb(error)
    },
  })
  duplex.push(head)
  raw.on('data', (d: Buffer) => {
    if (!duplex.push(d)) raw.pause()
  })
  raw.on('end', () => duplex.push(null))
  raw.on('close', () => duplex.destroy())
  return duplex
}
