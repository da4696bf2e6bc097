/**
 * A plain client socket read into a buffer the connection keeps, as the upstream is
 * (`upstream-reader.ts`): no 64 KB buffer allocated and shrunk per read, no push through the
 * Readable stream, no 'data' event, no nextTick.
 *
 * Node offers `onread` only to sockets it creates for `connect`; a server hands out sockets that
 * read through the stream. So the tunnel's listener accepts paused (`pauseOnConnect`), and the
 * accepted socket's handle is given to a new socket made with `onread`: the same file descriptor,
 * never read by the first socket, whose server accounting (`maxConnections`, `close` waiting for
 * connections) moves with the handle. This relies on `_handle` and `_server`, which Node has kept
 * since its first releases but does not document: where they are not what is expected, the
 * accepted socket is used as it is, through the stream.
 */
import net from 'node:net'
import {UpstreamReader} from './upstream-reader.js'

interface SocketInternals {
  _handle: {readStart?: unknown; useUserBuffer?: unknown} | null
  _server: unknown
  server: unknown
}

/**
 * The socket to use for an accepted, paused client connection: a new one reading into a kept
 * buffer (with its `reader`), or, where that cannot be done, the accepted one, resumed.
 */
export function adoptClientSocket(accepted: net.Socket): {socket: net.Socket; reader?: UpstreamReader} {
  const old = accepted as unknown as SocketInternals
  const handle = old._handle
  if (accepted.destroyed || !handle || typeof handle.useUserBuffer !== 'function' || typeof handle.readStart !== 'function' || !('_server' in old)) {
    accepted.resume()
    return {socket: accepted}
  }
  const reader = new UpstreamReader()
  const server = old._server
  old._handle = null
  old._server = null
  const socket = new net.Socket({handle, onread: reader.onread, readable: true, writable: true} as net.SocketConstructorOpts)
  const adopted = socket as unknown as SocketInternals
  adopted._server = server
  adopted.server = server
  return {socket, reader}
}
