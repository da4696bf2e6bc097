import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {generateSealKey} from '../../src/approvals/seal.js'
import {decisionKey, listRequests, pollDecision, readRequest, requestDigest, requestKey} from '../../src/approvals/store.js'
import type {ApprovalRequest} from '../../src/approvals/types.js'
import {verifyDecision} from '../../src/approvals/verify.js'
import {FileBucket} from '../../src/bucket/file.js'
import {withIdentityDefaults} from '../../src/identity/config.js'
import {DocumentError} from '../../src/util/document.js'

/**
 * Approval records come from a bucket anyone with write access can fill: each is checked against
 * its schema, a bad one is named (document, field, what was expected) and never trusted, and no
 * bad one takes a reader down.
 */
describe('approval records read from the bucket', () => {
  let dir: string
  let bucket: FileBucket
  const now = new Date()
  const key = generateSealKey()
  const request = (id: string): ApprovalRequest => ({
    v: 1, id, target: 'app', database: 'app',
    requester: {subject: 'alice', groups: ['engineering'], issuer: 'https://idp.example', kind: 'human'},
    sessionId: 's', connectionId: 1, sql: 'create table t ()', statements: [], class: 'ddl', ruleId: 'r', reason: 'x', reviewers: ['dba'],
    createdAt: now.toISOString(), expiresAt: new Date(now.getTime() + 60_000).toISOString(), windows: false, sealKey: key.publicKey, host: 'h', recent: [],
  })
  const put = (k: string, body: string) => bucket.put(k, body, {})

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'dbgate-documents-'))
    bucket = new FileBucket(dir)
  })
  afterAll(() => rm(dir, {recursive: true, force: true}))

  it('names the document, the field and what was expected', async () => {
    await put(requestKey('apr-badtime1'), JSON.stringify({...request('apr-badtime1'), expiresAt: 'soon'}))
    const e = (await readRequest(bucket, 'apr-badtime1').catch((x: unknown) => x)) as DocumentError
    expect(e).toBeInstanceOf(DocumentError)
    expect(e.message).toBe('approval request approvals/requests/apr-badtime1.json is not valid: expiresAt: expected an ISO timestamp')
    await put(requestKey('apr-nojson01'), '{"v":1,')
    await expect(readRequest(bucket, 'apr-nojson01')).rejects.toThrow(/apr-nojson01\.json is not valid: \(the document\): expected JSON/)
  })

  it('lists the valid requests and leaves out bad ones, a decision that is not JSON included', async () => {
    await put(requestKey('apr-good0001'), JSON.stringify(request('apr-good0001')))
    await put(requestKey('apr-norequester'), JSON.stringify({...request('apr-norequester'), requester: undefined}))
    await put(decisionKey('apr-good0001'), 'this is not a decision')
    const reported: string[] = []
    const views = await listRequests(bucket, {now, onInvalid: (m) => reported.push(m)})
    expect(views.map((v) => v.request.id)).toEqual(['apr-good0001'])
    expect(reported.sort()).toEqual([
      'approval decision approvals/decisions/apr-good0001.json is not valid: (the document): expected JSON, got text that does not parse; left out',
      'approval request approvals/requests/apr-badtime1.json is not valid: expiresAt: expected an ISO timestamp; left out',
      'approval request approvals/requests/apr-nojson01.json is not valid: (the document): expected JSON, got text that does not parse; left out',
      'approval request approvals/requests/apr-norequester.json is not valid: requester: expected object, received undefined; left out',
    ])
    expect(views[0]).toMatchObject({state: 'pending', decision: undefined})
  })

  it('hands the waiting tunnel a decision as written, and refuses one that is not JSON or lacks a field', async () => {
    const req = request('apr-good0001')
    const digest = requestDigest(req)
    const opts = {request: req, digest, privateKey: key.privateKey, identityConfig: withIdentityDefaults({issuer: 'https://idp.example', clientId: 'dbgate-cli'}), reviewers: ['dba']}
    const raw = await pollDecision(bucket, 'apr-good0001')
    expect(raw).toBe('this is not a decision')
    expect(await verifyDecision(raw, opts)).toEqual({ok: false, problem: 'it is not a valid decision ((the document): expected object, received string)'})
    const noProof = {v: 1, requestId: req.id, action: 'approve', reviewer: {subject: 'bob', groups: ['dba']}, decidedAt: now.toISOString(), requestDigest: digest}
    expect(await verifyDecision(noProof, opts)).toEqual({ok: false, problem: 'it is not a valid decision (proof: expected object, received undefined)'})
    expect(await verifyDecision({...noProof, action: 'approve-everything'}, opts)).toMatchObject({ok: false, problem: expect.stringMatching(/^it is not a valid decision \(action: .*"approve".*; proof: /)})
  })
})
