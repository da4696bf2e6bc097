import {exportJWK, generateKeyPair} from 'jose'
import {afterAll, beforeAll, describe, expect, test} from 'vitest'
import {groupsFromClaims, kindOf, tokenHash, verifyToken} from '../../src/identity/verify.js'
import {fixture, loginAs, mint, type Fixture} from './helpers.js'

let f: Fixture
let idToken: string
beforeAll(async () => {
  f = await fixture()
  await loginAs(f, {user: 'alice'})
  idToken = (await f.store.load(`${f.config.issuer}|${f.config.clientId}`))?.idToken as string
})
afterAll(async () => {
  await f.close()
})

const claims = () => ({iss: f.dev.issuer, aud: f.dev.cliClientId, sub: 'alice', email: 'alice@example.com', groups: ['engineering']})

/** The error's code, and proof that neither message nor next step repeats the token. */
async function failure(token: string, use: 'id_token' | 'access_token' | 'any' = 'id_token', config = f.config) {
  const error = (await verifyToken(config, token, {use}).then(
    () => {
      throw new Error('verification unexpectedly succeeded')
    },
    (e: unknown) => e,
  )) as Error & {code: string; nextStep?: string}
  for (const part of token.split('.').filter((p) => p.length >= 8)) {
    expect(error.message).not.toContain(part)
    expect(error.nextStep ?? '').not.toContain(part)
  }
  return error.code
}

describe('verifyToken', () => {
  test('accepts the IdP-issued ID token and builds the identity', async () => {
    const {identity} = await verifyToken(f.config, idToken, {use: 'id_token'})
    expect(identity).toMatchObject({subject: 'alice', groups: ['engineering'], kind: 'human', issuer: f.dev.issuer})
    expect(identity.expiresAt.getTime()).toBeGreaterThan(Date.now())
  })

  test('a tampered payload fails the signature check', async () => {
    const [h, p, s] = idToken.split('.')
    const payload = JSON.parse(Buffer.from(p, 'base64url').toString())
    payload.groups = ['dba']
    const tampered = [h, Buffer.from(JSON.stringify(payload)).toString('base64url'), s].join('.')
    expect(await failure(tampered)).toBe('TOKEN_INVALID_SIGNATURE')
  })

  test('a token signed by a key the IdP never published fails the signature check', async () => {
    const {privateKey} = await generateKeyPair('RS256', {extractable: true})
    const foreign = {...(await exportJWK(privateKey)), kid: 'test-key'}
    expect(await failure(await mint(foreign, claims()))).toBe('TOKEN_INVALID_SIGNATURE')
  })

  test('a token for another client fails with TOKEN_WRONG_AUDIENCE', async () => {
    expect(await failure(await mint(f.signingKey, {...claims(), aud: 'some-other-app'}))).toBe('TOKEN_WRONG_AUDIENCE')
    // The real ID token, checked by a dbgate configured as another client.
    expect(await failure(idToken, 'id_token', {...f.config, clientId: 'another-cli'})).toBe('TOKEN_WRONG_AUDIENCE')
  })

  test('a token from another issuer fails with TOKEN_WRONG_ISSUER', async () => {
    expect(await failure(await mint(f.signingKey, {...claims(), iss: 'https://evil.example'}))).toBe('TOKEN_WRONG_ISSUER')
  })

  test('expiry is enforced with the configured clock skew', async () => {
    const now = Math.floor(Date.now() / 1000)
    const expired = await mint(f.signingKey, {...claims(), iat: now - 600, exp: now - 30})
    // 30 s past expiry is inside the default 60 s allowance...
    await expect(verifyToken(f.config, expired, {use: 'id_token'})).resolves.toBeTruthy()
    // ...and outside a 10 s one.
    expect(await failure(expired, 'id_token', {...f.config, clockSkewMs: 10_000})).toBe('TOKEN_EXPIRED')
    expect(await failure(await mint(f.signingKey, {...claims(), iat: now - 600, exp: now - 120}))).toBe('TOKEN_EXPIRED')
  })

  test('a token not valid yet fails with TOKEN_NOT_YET_VALID', async () => {
    const now = Math.floor(Date.now() / 1000)
    expect(await failure(await mint(f.signingKey, {...claims(), nbf: now + 600}))).toBe('TOKEN_NOT_YET_VALID')
  })

  test('a token that says it was issued in the future fails with TOKEN_NOT_YET_VALID, within the skew it passes', async () => {
    const now = Math.floor(Date.now() / 1000)
    expect(await failure(await mint(f.signingKey, {...claims(), iat: now + 600, exp: now + 1200}), 'any')).toBe('TOKEN_NOT_YET_VALID')
    await expect(verifyToken(f.config, await mint(f.signingKey, {...claims(), iat: now + 30}), {use: 'any'})).resolves.toBeTruthy()
  })

  test("an ID token whose azp names another client fails with TOKEN_WRONG_CLIENT (OIDC Core); without azp it passes", async () => {
    expect(await failure(await mint(f.signingKey, {...claims(), aud: [f.dev.cliClientId, 'other-app'], azp: 'other-app'}), 'id_token')).toBe('TOKEN_WRONG_CLIENT')
    await expect(verifyToken(f.config, await mint(f.signingKey, {...claims(), azp: f.dev.cliClientId}), {use: 'id_token'})).resolves.toBeTruthy()
    await expect(verifyToken(f.config, await mint(f.signingKey, claims()), {use: 'id_token'})).resolves.toBeTruthy()
    // Access tokens name the client that obtained them (a CI client's own id): accepted unless identity.allowedClients says otherwise.
    const ci = await mint(f.signingKey, {...claims(), azp: 'ci-runner'}, {typ: 'at+jwt'})
    await expect(verifyToken(f.config, ci, {use: 'access_token'})).resolves.toBeTruthy()
    expect(await failure(ci, 'access_token', {...f.config, allowedClients: ['another-ci']})).toBe('TOKEN_WRONG_CLIENT')
    await expect(verifyToken({...f.config, allowedClients: ['ci-runner']}, ci, {use: 'access_token'})).resolves.toBeTruthy()
  })

  test('a token with surrounding whitespace is verified and hashed as the token itself; whitespace inside is TOKEN_MALFORMED', async () => {
    const {identity} = await verifyToken(f.config, `  ${idToken}\r\n`, {use: 'id_token'})
    expect(identity.tokenHash).toBe(tokenHash(idToken))
    expect(await failure(`${idToken.slice(0, 20)} ${idToken.slice(20)}`)).toBe('TOKEN_MALFORMED')
  })

  test('garbage, unsigned and access tokens posing as ID tokens are TOKEN_MALFORMED', async () => {
    expect(await failure('not-a-jwt')).toBe('TOKEN_MALFORMED')
    expect(await failure('a.b.c')).toBe('TOKEN_MALFORMED')
    const header = Buffer.from(JSON.stringify({alg: 'none'})).toString('base64url')
    const body = Buffer.from(JSON.stringify(claims())).toString('base64url')
    expect(await failure(`${header}.${body}.`)).toBe('TOKEN_MALFORMED')
    expect(await failure(await mint(f.signingKey, claims(), {typ: 'at+jwt'}))).toBe('TOKEN_MALFORMED')
    const {sub: _sub, ...noSubject} = claims()
    expect(await failure(await mint(f.signingKey, noSubject))).toBe('TOKEN_MALFORMED')
  })

  test('the access-token audience is `audience` when set, else the client id', async () => {
    const token = await mint(f.signingKey, {...claims(), aud: 'api://dbgate'}, {typ: 'at+jwt'})
    expect(await failure(token, 'access_token')).toBe('TOKEN_WRONG_AUDIENCE')
    const {identity} = await verifyToken({...f.config, audience: 'api://dbgate'}, token, {use: 'access_token'})
    expect(identity.subject).toBe('alice')
  })

  test('groups come from the configured (dotted) claim', async () => {
    const token = await mint(f.signingKey, {...claims(), realm_access: {roles: ['dba', 'readers']}})
    const {identity} = await verifyToken({...f.config, groupsClaim: 'realm_access.roles'}, token, {use: 'id_token'})
    expect(identity.groups).toEqual(['dba', 'readers'])
  })
})

describe('groupsFromClaims', () => {
  test.each([
    [{groups: ['a', 'b', 'a']}, 'groups', ['a', 'b']],
    [{groups: 'Data Engineering'}, 'groups', ['Data Engineering']],
    [{groups: [' dba', 'dba ', '', 'dba']}, 'groups', [' dba', 'dba ', 'dba']],
    [{groups: 'CN=Admins,OU=Groups,DC=example,DC=com'}, 'groups', ['CN=Admins,OU=Groups,DC=example,DC=com']],
    [{realm_access: {roles: ['x']}}, 'realm_access.roles', ['x']],
    [{'https://example.com/groups': ['y']}, 'https://example.com/groups', ['y']],
    [{groups: [1, 'ok', null]}, 'groups', ['ok']],
    [{groups: {nested: true}}, 'groups', []],
    [{}, 'groups', []],
    [{realm_access: ['not-an-object']}, 'realm_access.roles', []],
  ])('%j at %s → %j', (input, path, expected) => {
    expect(groupsFromClaims(input, path)).toEqual(expected)
  })
})

describe('kindOf', () => {
  test.each([
    [{sub: 'ci-bot', client_id: 'ci-bot'}, 'service'],
    [{sub: '0oa1', cid: '0oa1'}, 'service'],
    [{sub: 'abc@clients', gty: 'client-credentials'}, 'service'],
    [{sub: 'guid', idtyp: 'app'}, 'service'],
    [{sub: 'uuid', preferred_username: 'service-account-ci'}, 'service'],
    [{sub: '1077', email: 'ci@proj.iam.gserviceaccount.com'}, 'service'],
    [{sub: 'alice', azp: 'dbgate-cli', email: 'alice@example.com'}, 'human'],
    [{sub: 'alice'}, 'human'],
  ])('%j → %s', (claims, kind) => {
    expect(kindOf(claims)).toBe(kind)
  })
})
