/**
 * Whether a host names this machine's loopback interface: `localhost`, `::1` (bare or in URL
 * brackets, `[::1]`) or an address in 127.0.0.0/8. The one check for every place where loopback
 * is the condition: the tunnel's listen address, plain http to an issuer or bucket, an upstream
 * without TLS. A name that merely resolves to loopback does not count: resolution can change.
 */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[(.*)\]$/, '$1')
  return h === 'localhost' || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h)
}

/** Whether `url` is plain http to a loopback host, the one place plain http is tolerated. */
export function isLoopbackHttp(url: string | URL): boolean {
  const u = typeof url === 'string' ? new URL(url) : url
  return u.protocol === 'http:' && isLoopbackHost(u.hostname)
}
