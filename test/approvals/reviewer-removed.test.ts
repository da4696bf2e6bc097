/**
 * A reviewer is whoever the IdP says is in a reviewer group now, not whoever it said so of when they
 * last signed in. erin (dba) signed in; then she was taken out of dba at the IdP (she moved team,
 * left, or her access was revoked after an incident). Her stored token still named dba until it
 * expired, and `dbgate approve` renewed a token only when it was issued before the request, so she
 * approved alice's statement with it, and the tunnel believed it. `dbgate approve` now asks the IdP
 * again for each decision (a refresh grant), and the tunnel refuses a proof older than a few minutes,
 * so a token kept from before cannot stand in for one issued now. Real tunnel, real IdP (whose groups
 * change under the signed-in reviewer), real PostgreSQL.
 */
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {decide} from '../../src/approvals/review.js'
import {generateSealKey, seal} from '../../src/approvals/seal.js'
import {decisionKey, readRequest, requestDigest} from '../../src/approvals/store.js'
import type {ApprovalDecision, ApprovalRequest} from '../../src/approvals/types.js'
import {MAX_PROOF_AGE_MS, verifyDecision} from '../../src/approvals/verify.js'
import {getIdentity} from '../../src/identity/session.js'
import {openTokenStore} from '../../src/identity/token-store.js'
import {withClient} from '../helpers/pg.js'
import {APPROVAL_USERS, approvalSetting, watchNotices, type ApprovalSetting} from './helpers.js'
import {sampleRequest} from './sample-request.js'

const TARGET = ['allow: [engineering]', 'reviewers: [dba]', 'approvals:', '  expiry: 15m', '  windows: true'].join('\n')

describe('a reviewer taken out of the reviewer groups after signing in', () => {
  let s: ApprovalSetting
  const erin = APPROVAL_USERS.find((u) => u.id === 'erin')!
  const groups = [...erin.groups]
  beforeAll(async () => {
    s = await approvalSetting({database: 'reviewer_removed', target: TARGET, requester: 'alice'})
  })
  afterAll(() => s?.close())

  const exists = (name: string) => withClient(s.db.url, async (c) => (await c.query('select to_regclass($1) is not null as ok', [name])).rows[0].ok as boolean)

  it('cannot approve, deny or open a window with the sign-in she had, and once back in the group she can', async () => {
    const c = await s.t.client()
    const w = watchNotices(c)
    const held = c.query('create table removed_a (id int)')
    const id = await w.approvalId()
    // She signs in after the request was made: her token is fresh for it, and names dba.
    await s.p.login('erin')
    const reviewer = await s.p.reviewer('erin')
    expect(reviewer.identity.groups).toContain('dba')
    erin.groups = ['engineering']
    try {
      for (const input of [{id, action: 'approve' as const}, {id, action: 'window' as const, windowMs: 60_000}, {id, action: 'deny' as const, reason: 'no'}]) {
        await expect(decide({bucket: s.bucket, config: s.config, reviewer}, input), input.action).rejects.toMatchObject({code: 'APPROVAL_NOT_A_REVIEWER'})
      }
      expect(await s.bucket.get(decisionKey(id)).then(() => "written", () => "none")).toBe("none")
      expect(await exists('removed_a')).toBe(false)
    } finally {
      erin.groups = groups
    }
    await decide({bucket: s.bucket, config: s.config, reviewer}, {id, action: 'approve'})
    await held
    await c.end()
    expect(await exists('removed_a')).toBe(true)
  })

  it('the tunnel refuses a decision proved by a token older than a few minutes, however valid', async () => {
    // Her real token, issued by the IdP after the request and sealed to it, checked as the tunnel
    // checks it a while later: the token has not expired, and the group it names may be gone.
    const key = generateSealKey()
    const request: ApprovalRequest = sampleRequest({sealKey: key.publicKey, createdAt: new Date(Date.now() - 60_000).toISOString(), expiresAt: new Date(Date.now() + 3_600_000).toISOString()})
    await s.p.login('erin')
    const env = s.p.env('erin')
    const session = await getIdentity(s.p.f.config, {env, store: openTokenStore({env})})
    const digest = requestDigest(request)
    const decidedAt = new Date().toISOString()
    const sealed = {requestId: request.id, requestDigest: digest, action: 'approve' as const, decidedAt, token: session.token}
    const decision: ApprovalDecision = {v: 1, requestId: request.id, action: 'approve', reviewer: {subject: session.identity.subject, email: session.identity.email, groups: session.identity.groups}, decidedAt, requestDigest: digest, proof: seal(request.sealKey, JSON.stringify(sealed), {requestId: request.id, requestDigest: digest})}
    const checkedAt = (ms: number) => verifyDecision(decision, {request, digest, privateKey: key.privateKey, identityConfig: s.p.f.config, reviewers: ['dba'], now: () => new Date(Date.now() + ms)})
    expect(await checkedAt(0)).toMatchObject({ok: true})
    const late = s.p.f.config.clockSkewMs + MAX_PROOF_AGE_MS + 60_000
    const lateCheck = await checkedAt(late)
    expect(lateCheck).toMatchObject({ok: false, problem: expect.stringMatching(/the reviewer's token was issued \d+ min before the decision was checked, .*does not prove they may review now/)})
    expect(lateCheck).not.toHaveProperty('transient')
  })

  it('still decides in the interactive view and the CLI as before: each decision renews the sign-in', async () => {
    const c = await s.t.client()
    const w = watchNotices(c)
    const held = c.query('create table removed_b (id int)')
    const id = await w.approvalId()
    const reviewer = await s.p.reviewer('erin')
    const request = (await readRequest(s.bucket, id))!
    await decide({bucket: s.bucket, config: s.config, reviewer}, {id, action: 'window', windowMs: 60_000, digest: requestDigest(request)})
    await held
    // The window lets the next one through without asking, as before.
    await c.query('create table removed_c (id int)')
    await c.end()
    expect([await exists('removed_b'), await exists('removed_c')]).toEqual([true, true])
  })
})
