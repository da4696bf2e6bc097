/**
 * Nobody decides their own request, under whichever of their identities they sign in with.
 *
 * The attack: dave (engineering and dba) asks; then he decides it himself with a sign-in the IdP
 * issued him under another subject. IdPs do that: Entra ID's `sub` is pairwise (one per client
 * application, so each of `identity.allowedClients` sees another), OIDC pairwise subject types do
 * it by design, and an IdP with account linking gives one mailbox two accounts. The tunnel and the
 * CLI compared subjects only, so a properly sealed decision by "another" dba with dave's own
 * verified e-mail (as the IdP spells it, in another case, or in compatibility forms such as
 * fullwidth letters that fold to the same address, or a subaddress `dave+tag@` that the mail
 * server delivers to dave's own mailbox) ran his statement.
 *
 * Real tunnel, real PostgreSQL, tokens signed with the real IdP's key and verified against its JWKS.
 */
import net from 'node:net'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {mayReview} from '../../src/approvals/review.js'
import {seal} from '../../src/approvals/seal.js'
import {decisionKey, readRequest, requestDigest} from '../../src/approvals/store.js'
import type {ApprovalDecision, ApprovalRequest} from '../../src/approvals/types.js'
import type {Bucket} from '../../src/bucket/index.js'
import type {DbgateConfig} from '../../src/config/types.js'
import {verifyToken} from '../../src/identity/verify.js'
import {encodeCancelRequest} from '../../src/wire/frontend.js'
import type {PipelineTunnel} from '../helpers/open.js'
import {withClient, type UpstreamInfo} from '../helpers/pg.js'
import {waitFor} from '../helpers/wait.js'
import {mint} from '../identity/helpers.js'
import {approvalSetting, watchNotices, type ApprovalSetting, type People} from './helpers.js'

const TARGET = ['allow: [engineering]', 'reviewers: [dba]', 'approvals:', '  expiry: 15m'].join('\n')

describe('the requester under another identity', () => {
  let p: People
  let db: UpstreamInfo
  let bucketUrl: string
  let bucket: Bucket
  let config: DbgateConfig
  let t: PipelineTunnel

  const tableExists = (name: string) => withClient(db.url, async (c) => (await c.query('select count(*)::int as n from pg_class where relname = $1', [name])).rows[0].n === 1)
  /** A sign-in the IdP issued now to `sub`, with the given e-mail, in the dba group. */
  const tokenFor = (sub: string, email: string) => mint(p.f.signingKey, {iss: p.f.dev.issuer, aud: p.f.dev.cliClientId, sub, email, email_verified: true, groups: ['dba'], exp: Math.floor(Date.now() / 1000) + 600})
  const identityConfig = () => p.f.config

  async function sealedWith(token: string, request: ApprovalRequest, sub: string, email: string): Promise<ApprovalDecision> {
    const digest = requestDigest(request)
    const decidedAt = new Date().toISOString()
    const sealed = {requestId: request.id, requestDigest: digest, action: 'approve' as const, decidedAt, token}
    return {v: 1, requestId: request.id, action: 'approve', reviewer: {subject: sub, email, groups: ['dba']}, decidedAt, requestDigest: digest, proof: seal(request.sealKey, JSON.stringify(sealed), {requestId: request.id, requestDigest: digest})}
  }

  let setting: ApprovalSetting | undefined

  beforeAll(async () => {
    setting = await approvalSetting({database: 'same_person', target: TARGET, requester: 'dave'})
    ;({p, db, bucketUrl, bucket, config, t} = setting)
  })
  afterAll(() => setting?.close())

  const spellings = [
    ['another subject, the same e-mail', 'dave-pairwise-1', 'dave@example.com'],
    ['another subject, the e-mail in another case', 'dave-pairwise-2', 'Dave@EXAMPLE.com'],
    ['another subject, the e-mail in fullwidth letters', 'dave-pairwise-3', 'ｄａｖｅ@example.com'],
    // A subaddress (RFC 5233) is delivered to the same mailbox, so its verification link reached dave.
    ['another subject, a subaddress of the e-mail', 'dave-pairwise-4', 'dave+review@example.com'],
    ['another subject, a subaddress in another case', 'dave-pairwise-5', 'Dave+Ops@Example.COM'],
    // The same domain in its ASCII (punycode) form, or written with the root's trailing dot.
    ['another subject, the domain with a trailing dot', 'dave-pairwise-6', 'dave@example.com.'],
    ['another subject, the local part quoted', 'dave-pairwise-7', '"dave"@example.com'],
  ] as const

  it('refuses, in the tunnel, a properly sealed decision by the requester under another subject', async () => {
    for (const [i, [, sub, email]] of spellings.entries()) {
      const c = await t.client()
      const w = watchNotices(c)
      const table = `self_${i}`
      const held = c.query(`create table ${table} (id int)`).then(
        () => 'ran',
        (e: Error & {code?: string}) => e.code,
      )
      const id = await w.approvalId()
      const request = (await readRequest(bucket, id))!
      expect(request.requester.email).toBe('dave@example.com')
      await bucket.put(decisionKey(id), JSON.stringify(await sealedWith(await tokenFor(sub, email), request, sub, email)), {ifNoneMatch: true})
      await waitFor(async () => w.notices.some((n) => n.includes('was refused')) || (await tableExists(table)), `the decision under ${sub} is refused or obeyed`)
      // Give a decision that was believed the time to run the statement.
      await new Promise((r) => setTimeout(r, 500))
      expect(await tableExists(table)).toBe(false)
      expect(w.notices.join('\n')).toMatch(/cannot decide their own request/)
      const s = net.connect({host: '127.0.0.1', port: t.info.port})
      await new Promise((r) => s.once('connect', r))
      const {processID, secretKey} = c as unknown as {processID: number; secretKey: number}
      s.end(encodeCancelRequest(processID, secretKey))
      expect(await held).toBe('57014')
    }
  })

  it('refuses it at the CLI too, and still lets a real other reviewer decide', async () => {
    const c = await t.client()
    const w = watchNotices(c)
    const held = c.query('create table other_reviewer (id int)').catch((e: Error) => e)
    const id = await w.approvalId()
    const request = (await readRequest(bucket, id))!
    for (const [, sub, email] of spellings) {
      const {identity} = await verifyToken(identityConfig(), await tokenFor(sub, email), {use: p.f.config.verify})
      expect(mayReview(config, identity, request)).toMatchObject({ok: false, code: 'APPROVAL_SELF'})
    }
    const erin = await verifyToken(identityConfig(), await tokenFor('erin', 'erin@example.com'), {use: p.f.config.verify})
    expect(mayReview(config, erin.identity, request)).toEqual({ok: true})
    await bucket.put(decisionKey(id), JSON.stringify(await sealedWith(await tokenFor('erin', 'erin@example.com'), request, 'erin', 'erin@example.com')), {ifNoneMatch: true})
    await held
    expect(await tableExists('other_reviewer')).toBe(true)
  })
})
