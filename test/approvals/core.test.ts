import {createServer} from 'node:http'
import type {AddressInfo} from 'node:net'
import {describe, expect, it} from 'vitest'
import {shortDuration} from '../../src/approvals/format.js'
import {parseDuration} from '../../src/util/duration.js'
import {generateSealKey, open, seal} from '../../src/approvals/seal.js'
import {generateKeyPair, SignJWT} from 'jose'
import {newApprovalId, isApprovalId, requestDigest} from '../../src/approvals/store.js'
import {canonicalJson} from '../../src/util/canonical-json.js'
import {verifyDecision} from '../../src/approvals/verify.js'
import {withIdentityDefaults} from '../../src/identity/config.js'
import {notifyWebhook} from '../../src/approvals/webhook.js'

describe('sealed decisions', () => {
  const binding = {requestId: 'apr-aaaa', requestDigest: 'd1'}

  it('open only with the tunnel key they were sealed to, for the request they were sealed for', () => {
    const tunnel = generateSealKey()
    const box = seal(tunnel.publicKey, 'the token', binding)
    expect(open(tunnel.privateKey, box, binding)).toBe('the token')
    expect(JSON.stringify(box)).not.toContain('the token')
    expect(() => open(generateSealKey().privateKey, box, binding)).toThrow()
    expect(() => open(tunnel.privateKey, box, {...binding, requestId: 'apr-bbbb'})).toThrow()
    expect(() => open(tunnel.privateKey, box, {...binding, requestDigest: 'd2'})).toThrow()
    expect(() => open(tunnel.privateKey, {...box, ct: Buffer.from('x').toString('base64')}, binding)).toThrow()
  })
})

describe('approval ids, digests and durations', () => {
  it('makes short ids that the commands accept', () => {
    const ids = new Set(Array.from({length: 200}, newApprovalId))
    expect(ids.size).toBe(200)
    for (const id of ids) expect(isApprovalId(id)).toBe(true)
    expect(isApprovalId('../decisions/x')).toBe(false)
  })

  it('digests the same request the same however its keys are ordered', () => {
    expect(canonicalJson({b: 1, a: {d: [1, {y: 2, x: 1}], c: undefined}})).toBe('{"a":{"d":[1,{"x":1,"y":2}]},"b":1}')
  })

  it('reads and writes durations', () => {
    expect(parseDuration('30m')).toBe(1_800_000)
    expect(parseDuration('1h30m')).toBe(5_400_000)
    expect(parseDuration('45s')).toBe(45_000)
    expect(parseDuration('soon')).toBeUndefined()
    expect(parseDuration('30')).toBeUndefined() // no unit: ambiguous on the command line
    expect(shortDuration(95_000)).toBe('1m35s')
    expect(shortDuration(7_500_000)).toBe('2h05m')
  })
})

describe('approval webhook', () => {
  it('logs a failing webhook without throwing, and never names its full URL', async () => {
    const server = createServer((_req, res) => {
      res.statusCode = 500
      res.end()
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    const port = (server.address() as AddressInfo).port
    const logged: string[] = []
    await notifyWebhook({url: `http://127.0.0.1:${port}/services/T000/SECRET`, log: (_l, m) => logged.push(m)}, 'hello')
    await new Promise((r) => server.close(r))
    await notifyWebhook({url: `http://127.0.0.1:${port}/services/T000/SECRET`, log: (_l, m) => logged.push(m)}, 'hello')
    expect(logged[0]).toBe(`approval webhook at 127.0.0.1:${port} answered HTTP 500`)
    expect(logged[1]).toMatch(new RegExp(`approval webhook at 127.0.0.1:${port} failed`))
    expect(logged.join('\n')).not.toContain('SECRET')
  })
})

describe('verifying a decision while the IdP is down', () => {
  it('neither believes nor refuses it, so a genuine decision is not thrown away', async () => {
    const closed = createServer()
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r))
    const issuer = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`
    await new Promise((r) => closed.close(r))

    const key = generateSealKey()
    const now = new Date()
    const request = {
      v: 1 as const, id: 'apr-idpdown1', target: 'app', database: 'app',
      requester: {subject: 'alice', groups: ['engineering'], issuer, kind: 'human' as const},
      sessionId: 's', connectionId: 1, sql: 'create table t ()', statements: [], class: 'ddl', ruleId: 'r', reason: 'x', reviewers: ['dba'],
      createdAt: now.toISOString(), expiresAt: new Date(now.getTime() + 60_000).toISOString(), windows: false, sealKey: key.publicKey, host: 'h', recent: [],
    }
    const digest = requestDigest(request)
    const {privateKey} = await generateKeyPair('RS256')
    const token = await new SignJWT({sub: 'bob', aud: 'dbgate-cli', iss: issuer}).setProtectedHeader({alg: 'RS256', kid: 'k'}).setIssuedAt().setExpirationTime('5m').sign(privateKey)
    const decidedAt = now.toISOString()
    const decision = {
      v: 1, requestId: request.id, action: 'approve', reviewer: {subject: 'bob', groups: ['dba']}, decidedAt, requestDigest: digest,
      proof: seal(key.publicKey, JSON.stringify({requestId: request.id, requestDigest: digest, action: 'approve', decidedAt, token}), {requestId: request.id, requestDigest: digest}),
    }
    const check = await verifyDecision(decision, {request, digest, privateKey: key.privateKey, identityConfig: withIdentityDefaults({issuer, clientId: 'dbgate-cli'}), reviewers: ['dba']})
    expect(check).toMatchObject({ok: false, transient: true, problem: expect.stringMatching(/could not be reached/)})
  })
})

describe('approval webhook text', () => {
  it('cannot mention a channel, show a link, close the statement code span, or hide characters', async () => {
    const {slackCode, slackText} = await import('../../src/approvals/webhook.js')
    const {oneLine} = await import('../../src/approvals/format.js')
    const hostile = [
      'select 1 ` <!channel> <https://evil.example/approve|Approve here> `',
      'select 1 /* &lt;!here&gt; */',
      'drop table users; \u202e -- \u200b \x1b]8;;https://evil.example\x1b\\x\x1b]8;;\x1b\\',
    ]
    for (const sql of hostile) {
      const text = slackText(`dbgate: agent <https://evil.example|x> asks: ${slackCode(oneLine(sql))}.`)
      expect(text, sql).not.toMatch(/[<>]/)
      expect(text, sql).not.toMatch(/&(?!amp;|lt;|gt;)/)
      expect(text, sql).not.toMatch(/[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]/)
      // The statement is one code span: exactly two backticks, around it.
      expect(text.match(/`/g), sql).toHaveLength(2)
    }
  })
})
