import * as client from 'openid-client'
import {afterAll, beforeAll, beforeEach, describe, expect, test} from 'vitest'
import {logout} from '../../src/identity/logout.js'
import {discover} from '../../src/identity/oidc.js'
import {acquireServiceTokens, loginClientCredentials} from '../../src/identity/service.js'
import {authorizeTarget, getIdentity} from '../../src/identity/session.js'
import {storeKey} from '../../src/identity/token-store.js'
import {fixture, loginAs, type Fixture} from './helpers.js'

let f: Fixture
beforeAll(async () => {
  f = await fixture()
})
afterAll(async () => {
  await f.close()
})
beforeEach(async () => {
  await f.store.remove(storeKey(f.config))
  f.dev.ttl.idToken = 600
})

const inFuture = (seconds: number) => () => new Date(Date.now() + seconds * 1000)

describe('getIdentity', () => {
  test('without any login it asks for `dbgate login`', async () => {
    const error = await getIdentity(f.config, {store: f.store, env: f.env}).catch((e: unknown) => e)
    expect(error).toMatchObject({code: 'LOGIN_REQUIRED'})
    expect((error as {nextStep: string}).nextStep).toContain('dbgate login')
  })

  test('an expired ID token is refreshed silently and the new tokens are stored', async () => {
    f.dev.ttl.idToken = 60
    await loginAs(f)
    f.dev.ttl.idToken = 600
    const before = await f.store.load(storeKey(f.config))
    const config = {...f.config, clockSkewMs: 0}

    // Two minutes on, the 60-second ID token has expired; the refreshed one lives 10 minutes.
    const session = await getIdentity(config, {store: f.store, env: f.env, now: inFuture(120)})
    expect(session.identity.subject).toBe('alice')
    expect(session.identity.expiresAt.getTime()).toBeGreaterThan(Date.now() + 500_000)

    const after = await f.store.load(storeKey(f.config))
    expect(after?.idToken).not.toBe(before?.idToken)
    expect(after?.accessToken).not.toBe(before?.accessToken)

    // A tunnel renews in place before expiry: a new grant at the IdP, stored for the next process.
    const renewed = await session.refresh()
    expect(renewed.identity.subject).toBe('alice')
    const latest = await f.store.load(storeKey(f.config))
    expect(latest?.accessToken).not.toBe(after?.accessToken)
    expect(latest?.savedAt).toBeGreaterThanOrEqual(after?.savedAt ?? Infinity)
  })

  test('a revoked refresh token ends in LOGIN_REQUIRED', async () => {
    f.dev.ttl.idToken = 60
    await loginAs(f)
    f.dev.ttl.idToken = 600
    const stored = await f.store.load(storeKey(f.config))
    await client.tokenRevocation(await discover(f.config), stored?.refreshToken as string, {token_type_hint: 'refresh_token'})

    const error = await getIdentity({...f.config, clockSkewMs: 0}, {store: f.store, env: f.env, now: inFuture(120)}).catch((e: unknown) => e)
    expect(error).toMatchObject({code: 'LOGIN_REQUIRED'})
    expect((error as Error).message).toMatch(/revoked or has expired/)
    expect((error as {nextStep: string}).nextStep).toContain('dbgate login')
  })

  test('DBGATE_TOKEN is verified directly and wins over stored tokens', async () => {
    await loginAs(f, {user: 'bob'})
    const {tokens} = await acquireServiceTokens(f.config, {clientId: f.dev.serviceClientId, clientSecret: f.dev.serviceClientSecret})
    const human = (await f.store.load(storeKey(f.config)))?.idToken as string

    const asHuman = await getIdentity(f.config, {store: f.store, env: {...f.env, DBGATE_TOKEN: human}})
    expect(asHuman).toMatchObject({source: 'env-token', identity: {subject: 'bob', kind: 'human'}})

    // A client-credentials access token: its subject is the client, so it is a service identity.
    const asService = await getIdentity(f.config, {store: f.store, env: {...f.env, DBGATE_TOKEN: tokens.accessToken}})
    expect(asService.identity).toMatchObject({subject: 'ci-bot', kind: 'service', groups: ['ci']})

    const bad = await getIdentity(f.config, {store: f.store, env: {...f.env, DBGATE_TOKEN: human.slice(0, -4) + 'AAAA'}}).catch((e: unknown) => e)
    expect(bad).toMatchObject({code: 'TOKEN_INVALID_SIGNATURE'})
    expect((bad as {nextStep: string}).nextStep).toContain('DBGATE_TOKEN')
  })

  test('DBGATE_CLIENT_ID/SECRET give a service identity without any stored login', async () => {
    const env = {...f.env, DBGATE_CLIENT_ID: f.dev.serviceClientId, DBGATE_CLIENT_SECRET: f.dev.serviceClientSecret}
    const session = await getIdentity(f.config, {store: f.store, env})
    expect(session).toMatchObject({source: 'client-credentials', identity: {subject: 'ci-bot', kind: 'service'}})
    expect(await f.store.load(storeKey(f.config))).toBeUndefined()
    const renewed = await session.refresh()
    expect(renewed.identity.tokenId).not.toBe(session.identity.tokenId)
  })
})

describe('service identities', () => {
  test('loginClientCredentials stores a service token that getIdentity then returns', async () => {
    const result = await loginClientCredentials(f.config, {clientId: f.dev.serviceClientId, clientSecret: f.dev.serviceClientSecret}, {store: f.store})
    expect(result.identity).toMatchObject({subject: 'ci-bot', kind: 'service', groups: ['ci'], clientId: 'ci-bot'})
    expect(result.identity.tokenId).toBeTruthy()

    const session = await getIdentity(f.config, {store: f.store, env: f.env})
    expect(session.identity).toMatchObject({subject: 'ci-bot', kind: 'service'})
  })

  test('an expired service token is renewed only with its credentials at hand', async () => {
    await loginClientCredentials(f.config, {clientId: f.dev.serviceClientId, clientSecret: f.dev.serviceClientSecret}, {store: f.store})
    const later = {store: f.store, now: inFuture(3600)}
    await expect(getIdentity(f.config, {...later, env: f.env})).rejects.toMatchObject({code: 'LOGIN_REQUIRED'})

    // The store was not emptied by the failure, so the renewal below starts from the stored token.
    const env = {...f.env, DBGATE_CLIENT_ID: f.dev.serviceClientId, DBGATE_CLIENT_SECRET: f.dev.serviceClientSecret}
    f.dev.ttl.clientCredentials = 7200
    try {
      const session = await getIdentity(f.config, {...later, env})
      expect(session).toMatchObject({source: 'stored', identity: {kind: 'service'}})
    } finally {
      f.dev.ttl.clientCredentials = 600
    }
  })

  test('a wrong client secret is an IDP_ERROR naming the credentials', async () => {
    const error = await loginClientCredentials(f.config, {clientId: f.dev.serviceClientId, clientSecret: 'wrong'}, {store: f.store}).catch((e: unknown) => e)
    expect(error).toMatchObject({code: 'IDP_ERROR', oauthError: 'invalid_client'})
    expect((error as {nextStep: string}).nextStep).toContain('DBGATE_CLIENT_SECRET')
  })
})

describe('authorizeTarget', () => {
  test('lets members in and tells others which groups would', async () => {
    const carol = (await loginAs(f, {user: 'carol'})).identity
    const denied = authorizeTarget(carol, ['engineering', 'dba'])
    expect(denied.ok).toBe(false)
    if (denied.ok) return
    expect(denied.error.code).toBe('TARGET_NOT_ALLOWED')
    expect(denied.error.message).toContain('carol@example.com')
    expect(denied.error.message).toContain('auditors')
    expect(denied.error.nextStep).toContain('engineering, dba')

    const alice = (await loginAs(f, {user: 'alice'})).identity
    expect(authorizeTarget(alice, ['engineering', 'dba'])).toEqual({ok: true, matched: ['engineering']})
  })
})

describe('logout', () => {
  test('removes the stored tokens and revokes the refresh token at the IdP', async () => {
    await loginAs(f)
    const stored = await f.store.load(storeKey(f.config))
    const result = await logout(f.config, {store: f.store, env: f.env})
    expect(result).toEqual({removed: true, revocation: 'revoked'})
    expect(await f.store.load(storeKey(f.config))).toBeUndefined()
    await expect(client.refreshTokenGrant(await discover(f.config), stored?.refreshToken as string)).rejects.toMatchObject({error: 'invalid_grant'})
    await expect(getIdentity(f.config, {store: f.store, env: f.env})).rejects.toMatchObject({code: 'LOGIN_REQUIRED'})
  })

  test('with nothing stored it reports nothing removed', async () => {
    expect(await logout(f.config, {store: f.store, env: f.env})).toEqual({removed: false, revocation: 'skipped'})
  })
})
