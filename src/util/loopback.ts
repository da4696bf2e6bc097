/**
 * Whether a host names this machine's loopback interface: `localhost`, `::1` (bare or in URL
 * brackets, `[::1]`) or an address in 127.0.0.0/8. The one check for every place where loopback
 * is the condition: the tunnel's listen address, plain http to an issuer or bucket, an upstream
 * without TLS. A name that merely resolves to loopback does not count: resolution can change.
 */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[(.*)\]$/, '$1')
  if (h === 'localhost' || h === '::1') return true
  // Four octets of at most 255: `127.0.0.999` is no address, and a resolver may look it up as a name.
  const octets = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(h)
  return octets !== null && octets.slice(1).every((o) => Number(o) <= 255)
}

/**
 * Whether `url` is plain http to a loopback address, the one place plain http is tolerated. An
 * address, not `localhost`: fetched by name, the URL may reach ::1 first, whose port any local user
 * may hold while the issuer or bucket listens on 127.0.0.1 only, and then serve the signing keys
 * tokens are checked with. A URL cannot be dialled at another address than it names (the issuer's
 * is compared with each token's `iss`), so such a name is refused (`isLoopbackNameHttp`).
 */
export function isLoopbackHttp(url: string | URL): boolean {
  const u = typeof url === 'string' ? new URL(url) : url
  return u.protocol === 'http:' && isLoopbackHost(u.hostname) && !isLoopbackNameHttp(u)
}

/** Whether `url` is plain http to the name `localhost`: see isLoopbackHttp. */
export function isLoopbackNameHttp(url: string | URL): boolean {
  const u = typeof url === 'string' ? new URL(url) : url
  return u.protocol === 'http:' && u.hostname.toLowerCase() === 'localhost'
}

/**
 * The address dbgate uses for a loopback host it listens on or dials. `localhost` resolves to both
 * ::1 and 127.0.0.1 on most machines, and a server often holds only one of them (a container
 * published on 127.0.0.1, `listen_addresses = '127.0.0.1'`): the same port of the other is free
 * for any local process, and a connection made by name tries ::1 first. So `localhost` is
 * 127.0.0.1, the address the name has always had; any other host is returned as given.
 */
export function loopbackAddressOf(host: string): string {
  return host.toLowerCase() === 'localhost' ? '127.0.0.1' : host
}

/** Whether a target's host names the directory of a unix socket, as libpq reads a host that starts with `/`. */
export function isSocketDirectory(host: string): boolean {
  return host.startsWith('/')
}

/** The socket file a server on `port` listens at in directory `dir` (libpq's `.s.PGSQL.<port>`). */
export function socketPath(dir: string, port: number): string {
  return `${dir.replace(/\/+$/, '')}/.s.PGSQL.${port}`
}
