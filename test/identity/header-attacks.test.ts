import {createHmac, createPrivateKey, createPublicKey, createSign} from 'node:crypto'
import {exportJWK, generateKeyPair, SignJWT} from 'jose'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {verifyToken} from '../../src/identity/verify.js'
import {fixture, mint, type Fixture} from './helpers.js'

/**
 * JWS header tricks against the verifier: a header that names its own key (embedded `jwk`, `jku`,
 * `x5u`), a symmetric algorithm keyed with the IdP's public key, a `kid` of a key the IdP never
 * published, unknown critical extensions, an unsigned token. The verifier must take keys from the
 * IdP's JWKS only, and refuse every one of these, for every kind of token it is asked to accept.
 */
describe('verifyToken: header tricks', () => {
  let f: Fixture
  beforeAll(async () => {
    f = await fixture()
  })
  afterAll(() => f?.close())

  const claims = () => ({iss: f.dev.issuer, aud: f.dev.cliClientId, sub: 'mallory', email: 'mallory@example.com', groups: ['dba'], iat: Math.floor(Date.now() / 1000), exp: Math.floor(Date.now() / 1000) + 300})
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url')

  /** A token the attacker signed with a key of their own, naming that key in the header as `extra` says. */
  async function selfSigned(extra: (publicJwk: Record<string, unknown>) => Record<string, unknown>): Promise<string> {
    const {privateKey, publicKey} = await generateKeyPair('RS256', {extractable: true})
    const pub = (await exportJWK(publicKey)) as Record<string, unknown>
    return new SignJWT(claims()).setProtectedHeader({alg: 'RS256', ...extra(pub)} as {alg: string}).sign(privateKey)
  }

  /** HS256 over the token with the IdP's public key (PEM or JWK modulus) as the HMAC secret. */
  function hmacWithPublicKey(secret: string | Buffer, kid?: string): string {
    const input = `${b64({alg: 'HS256', typ: 'JWT', ...(kid ? {kid} : {})})}.${b64(claims())}`
    return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`
  }

  /** A compact JWS over `header` and the claims, signed with the IdP's private key whatever the header says. */
  function signedByIdp(header: Record<string, unknown>): string {
    const input = `${b64(header)}.${b64(claims())}`
    const key = createPrivateKey({key: f.signingKey as never, format: 'jwk'})
    return `${input}.${createSign('RSA-SHA256').update(input).sign(key).toString('base64url')}`
  }

  it('refuses every one of them, as an ID token, an access token or either', async () => {
    const pem = createPublicKey({key: f.signingKey as never, format: 'jwk'}).export({type: 'spki', format: 'pem'}) as string
    const tricks: Record<string, string> = {
      'embedded jwk, no kid': await selfSigned((jwk) => ({jwk})),
      'embedded jwk with the IdP kid': await selfSigned((jwk) => ({jwk: {...jwk, kid: f.signingKey.kid}, kid: f.signingKey.kid})),
      'jku pointing elsewhere': await selfSigned(() => ({jku: 'http://127.0.0.1:9/jwks.json', kid: 'attacker'})),
      'x5u pointing elsewhere': await selfSigned(() => ({x5u: 'http://127.0.0.1:9/cert.pem'})),
      'kid of a key the IdP never published': await selfSigned(() => ({kid: 'not-published'})),
      'kid of the IdP key, signed by another': await selfSigned(() => ({kid: f.signingKey.kid})),
      'HS256 keyed with the public PEM': hmacWithPublicKey(pem, f.signingKey.kid),
      'HS256 keyed with the public PEM, no kid': hmacWithPublicKey(pem),
      'HS256 keyed with the modulus': hmacWithPublicKey(Buffer.from(f.signingKey.n!, 'base64url'), f.signingKey.kid),
      'unsigned (alg none)': `${b64({alg: 'none', typ: 'JWT'})}.${b64(claims())}.`,
      'unsigned (alg NONE)': `${b64({alg: 'NONE'})}.${b64(claims())}.`,
      // Signed by the IdP's own key (as a compromised signer of headers would), with headers that change what the signature covers.
      'an unknown critical header': signedByIdp({alg: 'RS256', kid: f.signingKey.kid, crit: ['exp-bound'], 'exp-bound': 1}),
      'b64: false': signedByIdp({alg: 'RS256', kid: f.signingKey.kid, b64: false, crit: ['b64']}),
    }
    const accepted: string[] = []
    for (const [name, token] of Object.entries(tricks)) {
      for (const use of ['id_token', 'access_token', 'any'] as const) {
        const ok = await verifyToken(f.config, token, {use}).then(
          () => true,
          () => false,
        )
        if (ok) accepted.push(`${name} (${use})`)
      }
    }
    expect(accepted).toEqual([])
    // The genuine key still signs in, so the refusals above are the tricks', not the setup's.
    expect((await verifyToken(f.config, await mint(f.signingKey, claims()), {use: 'any'})).identity.subject).toBe('mallory')
  })
})
