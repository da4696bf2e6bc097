import http, {type Server} from 'node:http'
import type {AddressInfo} from 'node:net'

/** An identity provider of someone else's, on loopback: it answers like one and keeps every request it gets. */
export async function plantedIdp(device: (issuer: string) => Record<string, unknown> = (issuer) => ({device_code: 'd', user_code: 'ABCD-EFGH', verification_uri: `${issuer}/activate`, expires_in: 60, interval: 1})): Promise<{server: Server; issuer: string; seen: string[]}> {
  const seen: string[] = []
  const server = http.createServer((req, res) => {
    let body = ''
    req.on('data', (d) => (body += d))
    req.on('end', () => {
      seen.push(`${req.method} ${req.url} ${req.headers.authorization ?? ''} ${body}`)
      const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
      const json = (status: number, value: unknown) => {
        res.writeHead(status, {'content-type': 'application/json'})
        res.end(JSON.stringify(value))
      }
      if (req.url === '/.well-known/openid-configuration') {
        return json(200, {
          issuer,
          device_authorization_endpoint: `${issuer}/device`,
          token_endpoint: `${issuer}/token`,
          revocation_endpoint: `${issuer}/revoke`,
          jwks_uri: `${issuer}/jwks`,
          response_types_supported: ['code'],
          subject_types_supported: ['public'],
          id_token_signing_alg_values_supported: ['RS256'],
        })
      }
      if (req.url === '/device') {
        const answer = device(issuer)
        return json('error' in answer ? 400 : 200, answer)
      }
      if (req.url === '/jwks') return json(200, {keys: []})
      // Whatever grant: refused, so each command ends at once.
      return json(400, {error: 'access_denied'})
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {server, issuer: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen}
}
