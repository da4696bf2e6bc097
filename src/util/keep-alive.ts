/**
 * Keep-alive on the gateway's HTTPS API only for requests whose token verified. Any client can send
 * a request that needs no token (the protected-resource metadata) or one with a bad token, and a
 * connection kept open after it would no longer count as waiting for its first request: it could
 * then be held, uncapped, by sending its next request slowly. So every response closes its
 * connection unless the handler has verified the request's token.
 */
import type {ServerResponse} from 'node:http'

const wanted = new WeakMap<ServerResponse, boolean>()

/** Called first for every request: the response closes its connection unless `keepAliveVerified` is called. */
export function closeUnlessVerified(res: ServerResponse): void {
  wanted.set(res, res.shouldKeepAlive)
  res.shouldKeepAlive = false
}

/** The request's token verified: its connection may stay open for the next request, if the client asked for that. */
export function keepAliveVerified(res: ServerResponse): void {
  const keep = wanted.get(res)
  if (keep !== undefined && !res.headersSent) res.shouldKeepAlive = keep
}
