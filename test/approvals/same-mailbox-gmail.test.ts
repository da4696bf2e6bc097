/**
 * Nobody decides their own request from a second account whose verified e-mail reaches their own
 * mailbox. Gmail delivers `d.a.v.e.ops@gmail.com` and `daveops@googlemail.com` to
 * `dave.ops@gmail.com`, so an IdP verifies each of those as a separate account's address with a
 * link that lands in dave's inbox. The tunnel and `dbgate approve` folded case, compatibility forms
 * and subaddresses, but took those spellings for other people: dave, in dba under a second account,
 * approved his own statement. Real tunnel, real PostgreSQL, tokens signed with the real IdP's key.
 */
import net from 'node:net'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {mayReview} from '../../src/approvals/review.js'
import {seal} from '../../src/approvals/seal.js'
import {decisionKey, readRequest, requestDigest} from '../../src/approvals/store.js'
import type {ApprovalDecision, ApprovalRequest} from '../../src/approvals/types.js'
import {verifyToken} from '../../src/identity/verify.js'
import {encodeCancelRequest} from '../../src/wire/frontend.js'
import {withClient} from '../helpers/pg.js'
import {waitFor} from '../helpers/wait.js'
import {mint} from '../identity/helpers.js'
import {APPROVAL_USERS, approvalSetting, watchNotices, type ApprovalSetting} from './helpers.js'

const TARGET = ['allow: [engineering]', 'reviewers: [dba]', 'approvals:', '  expiry: 15m'].join('\n')

describe('the requester from a second account at Gmail', () => {
  let s: ApprovalSetting
  beforeAll(async () => {
    // dave signs in with his Gmail address (this file's own copy of the users).
    APPROVAL_USERS.find((u) => u.id === 'dave')!.email = 'dave.ops@gmail.com'
    s = await approvalSetting({database: 'same_mailbox', target: TARGET, requester: 'dave'})
  })
  afterAll(() => s?.close())

  const tokenFor = (sub: string, email: string) => mint(s.p.f.signingKey, {iss: s.p.f.dev.issuer, aud: s.p.f.dev.cliClientId, sub, email, email_verified: true, groups: ['dba'], exp: Math.floor(Date.now() / 1000) + 600})
  async function sealedWith(request: ApprovalRequest, sub: string, email: string): Promise<ApprovalDecision> {
    const token = await tokenFor(sub, email)
    const digest = requestDigest(request)
    const decidedAt = new Date().toISOString()
    const sealed = {requestId: request.id, requestDigest: digest, action: 'approve' as const, decidedAt, token}
    return {v: 1, requestId: request.id, action: 'approve', reviewer: {subject: sub, email, groups: ['dba']}, decidedAt, requestDigest: digest, proof: seal(request.sealKey, JSON.stringify(sealed), {requestId: request.id, requestDigest: digest})}
  }
  const exists = (name: string) => withClient(s.db.url, async (c) => (await c.query('select to_regclass($1) is not null as ok', [name])).rows[0].ok as boolean)

  const spellings = [
    ['dots left out', 'dave-second-1', 'daveops@gmail.com'],
    ['dots moved', 'dave-second-2', 'd.a.v.e.ops@gmail.com'],
    ['at googlemail.com', 'dave-second-3', 'dave.ops@googlemail.com'],
    ['at googlemail.com, without dots, a subaddress, another case', 'dave-second-4', 'DaveOps+review@GoogleMail.com'],
  ] as const

  it('refuses, in the tunnel and at the CLI, a decision by dave under another subject with a spelling of his Gmail address', async () => {
    for (const [i, [what, sub, email]] of spellings.entries()) {
      const c = await s.t.client()
      const w = watchNotices(c)
      const table = `self_gmail_${i}`
      const held = c.query(`create table ${table} (id int)`).then(
        () => 'ran',
        (e: Error & {code?: string}) => e.code,
      )
      const id = await w.approvalId()
      const request = (await readRequest(s.bucket, id))!
      expect(request.requester.email).toBe('dave.ops@gmail.com')
      const {identity} = await verifyToken(s.p.f.config, await tokenFor(sub, email), {use: s.p.f.config.verify})
      expect(mayReview(s.config, identity, request), what).toMatchObject({ok: false, code: 'APPROVAL_SELF'})
      await s.bucket.put(decisionKey(id), JSON.stringify(await sealedWith(request, sub, email)), {ifNoneMatch: true})
      await waitFor(async () => w.notices.some((n) => n.includes('was refused')) || (await exists(table)), `the decision under ${sub} is refused or obeyed`)
      expect(await exists(table), what).toBe(false)
      expect(w.notices.join('\n'), what).toMatch(/cannot decide their own request/)
      const k = net.connect({host: '127.0.0.1', port: s.t.info.port})
      await new Promise((r) => k.once('connect', r))
      const {processID, secretKey} = c as unknown as {processID: number; secretKey: number}
      k.end(encodeCancelRequest(processID, secretKey))
      expect(await held).toBe('57014')
      await c.end()
    }
  })

  it('still lets another Gmail user decide', async () => {
    const c = await s.t.client()
    const w = watchNotices(c)
    const held = c.query('create table other_gmail (id int)')
    const id = await w.approvalId()
    const request = (await readRequest(s.bucket, id))!
    const {identity} = await verifyToken(s.p.f.config, await tokenFor('frank', 'dave.ops2@gmail.com'), {use: s.p.f.config.verify})
    expect(mayReview(s.config, identity, request)).toEqual({ok: true})
    await s.bucket.put(decisionKey(id), JSON.stringify(await sealedWith(request, 'frank', 'dave.ops2@gmail.com')), {ifNoneMatch: true})
    await held
    await c.end()
    expect(await exists('other_gmail')).toBe(true)
  })
})
