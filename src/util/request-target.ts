/**
 * The path of an HTTP request's target, for the gateway's HTTP listeners. Node's parser accepts
 * request targets that are no URL (`//[`, a port past 65535, an absolute form with a broken host)
 * and paths whose percent-encoding does not decode (`/mcp/%E0`); `new URL` and `decodeURIComponent`
 * throw on them. Anyone who can reach a listener sends such a target before any token is checked,
 * so it is read here once, without throwing, and refused as a bad request by the caller.
 */

/** The target's path (still percent-encoded, and known to decode), or undefined when it is no URL path. */
export function requestPath(target: string | undefined): string | undefined {
  let pathname: string
  try {
    pathname = new URL(target ?? '/', 'http://request.invalid').pathname
    decodeURIComponent(pathname)
  } catch {
    return undefined
  }
  return pathname
}

/** What a client is told about a request target `requestPath` refused. */
export const BAD_REQUEST_TARGET = 'the request target is not a valid URL path (it does not parse, or its percent-encoding does not decode)'
