/**
 * A statement withdrawn while it waits (the client cancelled it, or its session is ending: on a
 * gateway, the token expired or server.maxSessionDuration came) runs nothing, even when a reviewer's
 * decision is being read and checked at that very moment. The gate looked at the withdrawal only
 * between polls: a cancel or a session end that came while it read the decision, verified the
 * reviewer's token with the IdP, or wrote the outcome to the bucket (an S3 round trip) was
 * overtaken by the approval, and the statement ran for a client that had given it up, or for an
 * identity whose session had ended, with the bucket saying "approved".
 *
 * The gate as the pipeline builds it, against a real file bucket, real tokens from a real IdP and
 * a decision sealed by the same core `dbgate approve` calls; the withdrawal is made to land at each
 * point of the gate's reading and settling (the bucket is wrapped to say when it is touched).
 */
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {createApprovalGate} from '../../src/approvals/gate.js'
import {decide} from '../../src/approvals/review.js'
import {decisionKey, outcomeKey, readOutcome, readRequest} from '../../src/approvals/store.js'
import {openBucket, type Bucket} from '../../src/bucket/index.js'
import type {DbgateConfig} from '../../src/config/types.js'
import {getIdentity} from '../../src/identity/session.js'
import {openTokenStore} from '../../src/identity/token-store.js'
import type {HoldVerdict} from '../../src/policy/verdict.js'
import type {StatementVerdict} from '../../src/proxy/seam.js'
import {loadedConfig} from '../helpers/open.js'
import {sessionWith, statementContext} from '../helpers/statement-context.js'
import {waitFor} from '../helpers/wait.js'
import {people, tempBucketUrl, type People} from './helpers.js'

const TARGET = ['allow: [engineering]', 'reviewers: [dba]', 'approvals:', '  expiry: 15m', '  windows: true'].join('\n')

/** Where, in the gate's handling of a decision, the withdrawal lands. */
type Moment = 'the decision is found' | 'the decision is read' | 'the outcome is written' | 'the window is published'

/** The bucket, telling `at` when the gate touches it at `moment` (once). */
function touching(inner: Bucket, moment: Moment, at: () => void): Bucket {
  let done = false
  const once = (hit: boolean) => {
    if (hit && !done) {
      done = true
      at()
    }
  }
  return new Proxy(inner, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown
      if (typeof v !== 'function') return v
      return async (...args: unknown[]) => {
        const key = String(args[0])
        if (prop === 'put' && key.startsWith('approvals/outcomes/')) once(moment === 'the outcome is written')
        if (prop === 'put' && key.startsWith('approvals/windows/')) once(moment === 'the window is published')
        const out = await (v as (...a: unknown[]) => Promise<unknown>).apply(target, args)
        if (prop === 'head' && key.startsWith('approvals/decisions/') && out) once(moment === 'the decision is found')
        if (prop === 'get' && key.startsWith('approvals/decisions/')) once(moment === 'the decision is read')
        return out
      }
    },
  })
}

describe('a statement withdrawn while its decision is read and checked runs nothing', () => {
  let p: People
  let config: DbgateConfig

  beforeAll(async () => {
    p = await people()
    for (const u of ['alice', 'bob']) await p.login(u)
  })
  afterAll(() => p?.close())

  const ways: [string, string][] = [
    ['the client cancels', 'cancelled by the client'],
    ['the session is ending', 'the session is ending: your sign-in expired'],
  ]
  const moments: [Moment, 'approve' | 'window'][] = [
    ['the decision is found', 'approve'],
    ['the decision is read', 'approve'],
    ['the outcome is written', 'approve'],
    ['the window is published', 'window'],
  ]
  for (const [way, why] of ways) {
    for (const [moment, action] of moments) {
      it(`${way} as ${moment} (${action})`, async () => {
        const bucketUrl = tempBucketUrl()
        const bucket = openBucket(bucketUrl)
        config = loadedConfig({host: '127.0.0.1', port: 5432, database: 'app', user: 'app', password: 'x', url: ''} as never, TARGET, `identity:\n  issuer: ${p.f.dev.issuer}\n  clientId: ${p.f.dev.cliClientId}\nbucket: ${bucketUrl}`).config
        const alice = await getIdentity(p.f.config, {env: p.env('alice'), store: openTokenStore({env: p.env('alice')})})
        const cancel = new AbortController()
        const events: {type: string; payload: unknown}[] = []
        const gate = createApprovalGate({
          bucket: touching(bucket, moment, () => cancel.abort(new Error(why))),
          target: config.targets.app!,
          identity: alice.identity,
          identityConfig: p.f.config,
          record: (_s, type, payload) => events.push({type, payload}),
          log: () => {},
          pollMs: 50,
        })
        const hold: HoldVerdict = {
          action: 'hold',
          decision: {action: 'require_approval', statements: [], holds: [{class: 'ddl', ruleId: 'default.ddl-approval', reason: 'schema changes need a reviewer', statementIndex: 0}]} as never,
          reviewers: ['dba'],
          rule: {action: 'require_approval', ruleId: 'default.ddl-approval', class: 'ddl', reason: 'schema changes need a reviewer'} as never,
          error: {severity: 'ERROR', code: '42501', message: 'needs approval'},
        }
        const settled = gate.settle('create table gone_when_withdrawn (id int)', statementContext(sessionWith([]), {signal: cancel.signal}), hold) as Promise<StatementVerdict>
        let id: string | undefined
        await waitFor(async () => {
          for await (const o of bucket.list('approvals/requests/')) id = o.key.replace(/^.*\/(apr-[a-z0-9]+)\.json$/, '$1')
          return id
        }, 'the request is filed')
        const request = (await readRequest(bucket, id!))!
        await decide({bucket, config, reviewer: await p.reviewer('bob')}, {id: id!, action, ...(action === 'window' ? {windowMs: 60_000} : {})})
        expect(await bucket.head(decisionKey(id!))).toBeTruthy()

        const verdict = await settled
        expect(cancel.signal.aborted, 'the withdrawal landed').toBe(true)
        // Nothing runs: the proxy is told to refuse it, as cancelled.
        expect(verdict.action, `${way} as ${moment}`).toBe('reject')
        expect(verdict).toMatchObject({error: {code: '57014'}, approval: {id: request.id, decision: 'approval_withdrawn'}})
        // The bucket and the recording say it was withdrawn, not approved.
        expect(await readOutcome(bucket, id!)).toMatchObject({state: 'withdrawn'})
        expect(events.map((e) => e.type)).toContain('approval.withdrawn')
        // A window granted on a statement that never ran opens nothing.
        expect(gate.liveWindows()).toEqual([])
        expect(await bucket.head(outcomeKey(id!))).toBeTruthy()
      })
    }
  }
})

/**
 * The same for the request's validity: a decision read, checked and written past the moment the
 * request expires is too late, and the statement, which the requester was about to be told had
 * expired, does not run.
 */
describe('a decision that completes after the request expired runs nothing', () => {
  let p: People
  beforeAll(async () => {
    p = await people()
    for (const u of ['alice', 'bob']) await p.login(u)
  })
  afterAll(() => p?.close())

  const moments: [Moment, 'approve' | 'window'][] = [
    ['the decision is found', 'approve'],
    ['the decision is read', 'approve'],
    ['the outcome is written', 'approve'],
    ['the window is published', 'window'],
  ]
  for (const [moment, action] of moments) {
    it(`the request expires as ${moment} (${action})`, async () => {
      const bucketUrl = tempBucketUrl()
      const bucket = openBucket(bucketUrl)
      const config = loadedConfig({host: '127.0.0.1', port: 5432, database: 'app', user: 'app', password: 'x', url: ''} as never, TARGET, `identity:\n  issuer: ${p.f.dev.issuer}\n  clientId: ${p.f.dev.cliClientId}\nbucket: ${bucketUrl}`).config
      const alice = await getIdentity(p.f.config, {env: p.env('alice'), store: openTokenStore({env: p.env('alice')})})
      // The gate's clock runs as the real one until the moment, then jumps past the 15 minutes.
      let skew = 0
      const events: {type: string; payload: unknown}[] = []
      const gate = createApprovalGate({
        bucket: touching(bucket, moment, () => (skew = 16 * 60_000)),
        target: config.targets.app!,
        identity: alice.identity,
        identityConfig: p.f.config,
        record: (_s, type, payload) => events.push({type, payload}),
        log: () => {},
        pollMs: 50,
        now: () => new Date(Date.now() + skew),
      })
      const hold: HoldVerdict = {
        action: 'hold',
        decision: {action: 'require_approval', statements: [], holds: [{class: 'ddl', ruleId: 'default.ddl-approval', reason: 'schema changes need a reviewer', statementIndex: 0}]} as never,
        reviewers: ['dba'],
        rule: {action: 'require_approval', ruleId: 'default.ddl-approval', class: 'ddl', reason: 'schema changes need a reviewer'} as never,
        error: {severity: 'ERROR', code: '42501', message: 'needs approval'},
      }
      const settled = gate.settle('create table gone_when_expired (id int)', statementContext(sessionWith([])), hold) as Promise<StatementVerdict>
      let id: string | undefined
      await waitFor(async () => {
        for await (const o of bucket.list('approvals/requests/')) id = o.key.replace(/^.*\/(apr-[a-z0-9]+)\.json$/, '$1')
        return id
      }, 'the request is filed')
      await decide({bucket, config, reviewer: await p.reviewer('bob')}, {id: id!, action, ...(action === 'window' ? {windowMs: 60_000} : {})})

      const verdict = await settled
      expect(skew, 'the clock moved').toBeGreaterThan(0)
      expect(verdict.action, moment).toBe('reject')
      expect(verdict).toMatchObject({error: {code: '42501', message: expect.stringMatching(/expired/)}, approval: {id, decision: 'approval_timeout'}})
      expect(await readOutcome(bucket, id!)).toMatchObject({state: 'expired'})
      expect(events.map((e) => e.type)).toContain('approval.expired')
      expect(gate.liveWindows()).toEqual([])
    })
  }
})
