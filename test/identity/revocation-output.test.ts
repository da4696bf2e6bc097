import http, {type Server} from 'node:http'
import type {AddressInfo} from 'node:net'
import {writeFile} from 'node:fs/promises'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {openTokenStore, storeKey} from '../../src/identity/token-store.js'
import {isolatedEnv} from '../helpers/open.js'
import {run} from '../helpers/run.js'

const BIN = path.resolve('bin/run.js')

/**
 * `dbgate logout` says when the IdP refused to revoke the refresh token, quoting the IdP's `error`
 * and `error_description`. Those are the IdP's words: printed raw, an OSC 52 clipboard write, an
 * erased line or a carriage return could turn "tokens stay valid there" into what reads as a clean
 * sign-out, or plant a command in the clipboard. A real HTTP IdP on 127.0.0.1 refuses here.
 */
describe('logout quotes a refusing IdP as visible text', () => {
  let server: Server
  let issuer: string
  let answer: Record<string, string> = {}
  const CONTROLS = ['\x1b', '\x07', '\r', '\u009b', '\u202e', '\u200b']

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      req.resume()
      req.on('end', () => {
        res.setHeader('content-type', 'application/json')
        if (req.url === '/.well-known/openid-configuration') {
          return res.end(JSON.stringify({issuer, token_endpoint: `${issuer}/token`, revocation_endpoint: `${issuer}/revoke`, jwks_uri: `${issuer}/jwks`, response_types_supported: ['code'], subject_types_supported: ['public'], id_token_signing_alg_values_supported: ['RS256']}))
        }
        res.statusCode = 400
        res.end(JSON.stringify(answer))
      })
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  })
  afterAll(async () => {
    await new Promise((r) => server.close(r))
  })

  const cases: {name: string; answer: Record<string, string>}[] = [
    {name: 'in error_description', answer: {error: 'invalid_request', error_description: 'ok\x1b]52;c;cm0gLXJmIH4=\x07\x1b[2K\rSigned out, tokens revoked\u009b1A\u202e\u200b'}},
    {name: 'in the error code', answer: {error: 'x\x1b[2K\r\u009b1A\u202e\u200b\x07'}},
  ]
  for (const c of cases) {
    it(c.name, async () => {
      answer = c.answer
      const env: NodeJS.ProcessEnv = {...isolatedEnv(), DBGATE_TOKEN: '', DBGATE_CLIENT_ID: '', DBGATE_CLIENT_SECRET: '', DBGATE_CONFIG: ''}
      const config = path.join(env.HOME!, 'dbgate.yaml')
      await writeFile(config, `identity:\n  issuer: ${issuer}\n  clientId: dbgate-cli\ntargets:\n  prod: {host: 127.0.0.1, database: app, user: app}\n`)
      await openTokenStore({env}).save(storeKey({issuer, clientId: 'dbgate-cli'}), {version: 1, kind: 'human', accessToken: 'a', refreshToken: 'r', savedAt: Date.now()})
      const r = await run('node', [BIN, 'logout', '--config', config], {env})
      expect(r.stdout).toContain(`Signed out of ${issuer}; stored tokens removed.`)
      expect(r.stdout).toMatch(/Revocation at the identity provider failed \(.*\\x1b.*\); tokens stay valid there until they expire\./)
      for (const raw of CONTROLS) expect(r.stdout + r.stderr, `${JSON.stringify(raw)} reached the terminal`).not.toContain(raw)
    })
  }
})
