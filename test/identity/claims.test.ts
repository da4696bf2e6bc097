import {afterAll, beforeAll, expect, test} from 'vitest'
import {authorizeTarget} from '../../src/identity/session.js'
import {verifyToken} from '../../src/identity/verify.js'
import {fixture, mint, type Fixture} from './helpers.js'

let f: Fixture
beforeAll(async () => {
  f = await fixture()
})
afterAll(async () => {
  await f.close()
})

const claims = () => ({iss: f.dev.issuer, aud: f.dev.cliClientId, email: 'alice@example.com', groups: ['engineering']})

test('a signed token whose subject is not a string is refused, naming the claim, not turned into an identity', async () => {
  // Signed by the IdP's own key, right issuer and audience: only the claim's type is wrong.
  for (const sub of [42, '', ['alice']]) {
    const token = await mint(f.signingKey, {...claims(), sub: sub as unknown as string})
    const e = (await verifyToken(f.config, token, {use: 'id_token'}).catch((x: unknown) => x)) as Error & {code?: string}
    expect(e.code, JSON.stringify(sub)).toBe('TOKEN_MALFORMED')
    expect(e.message, JSON.stringify(sub)).toMatch(/its claims are not what an identity needs \(sub: /)
  }
  const {identity} = await verifyToken(f.config, await mint(f.signingKey, {...claims(), sub: 'alice'}), {use: 'id_token'})
  expect(identity.subject).toBe('alice')
})

// AD FS sends a one-valued groups claim as a string. Split at spaces or commas, a part of the one
// group would match an `allow` written for another group.
test.each([
  ['Data Engineering', ['engineering', 'Engineering', 'Data'], ['Data Engineering']],
  ['CN=Admins,OU=Groups,DC=example,DC=com', ['OU=Groups', 'DC=example', 'CN=Admins'], ['CN=Admins,OU=Groups,DC=example,DC=com']],
  ['dba, readonly', ['dba', 'readonly'], ['dba, readonly']],
  [' dba', ['dba'], [' dba']],
])('a groups claim sent as the one string %j is one group: no allow for a part of it lets its holder in', async (groups, refusedBy, allowedBy) => {
  const {identity} = await verifyToken(f.config, await mint(f.signingKey, {...claims(), sub: 'dana', groups}), {use: 'id_token'})
  for (const allow of refusedBy) expect(authorizeTarget(identity, [allow]).ok, allow).toBe(false)
  for (const allow of allowedBy) expect(authorizeTarget(identity, [allow]).ok, allow).toBe(true)
})
