import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {parseEventLine} from '../../src/audit/events.js'
import {keyObjectKey, loadKeyRing, loadOrCreateInstallationKey, publishKey} from '../../src/audit/signing.js'
import {FileBucket} from '../../src/bucket/file.js'
import {PolicyStoreError, verifyPublishedPolicy} from '../../src/policy/published.js'
import {DocumentError} from '../../src/util/document.js'
import {alice} from './helpers.js'

/** Keys, event lines and published policies are read from the bucket: each is checked, and a bad one is named. */
describe('audit documents read from the bucket', () => {
  let dir: string
  let bucket: FileBucket

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'dbgate-audit-documents-'))
    bucket = new FileBucket(path.join(dir, 'bucket'))
  })
  afterAll(() => rm(dir, {recursive: true, force: true}))

  it('loads the valid keys and reports a bad one by its key, field and expectation', async () => {
    const key = await loadOrCreateInstallationKey(path.join(dir, 'keys'))
    await publishKey(bucket, alice, key)
    const good = JSON.parse((await bucket.get(keyObjectKey(key.keyId))).body.toString('utf8')) as {identity: Record<string, unknown>}
    await bucket.put('keys/bad.json', JSON.stringify({...good, identity: {...good.identity, subject: 42}}), {})
    await bucket.put('keys/forged.json', JSON.stringify({...good, keyId: 'someone-else'}), {})
    const {keys, errors} = await loadKeyRing(bucket)
    expect([...keys.keys()]).toEqual([key.keyId])
    expect(errors).toEqual([
      {key: 'keys/bad.json', message: 'published key keys/bad.json is not valid: identity.subject: expected string, received number'},
      {key: 'keys/forged.json', message: 'published key keys/forged.json is not valid: keyId: someone-else does not match its public key'},
    ])
  })

  it('names the field of an event line that is not a v1 envelope', () => {
    const line = {v: 1, type: 'statement', session: 's', seq: 3, ts: '2026-03-01T10:00:00.000Z', prev: 'x', data: {sql: 'select 1', decision: 'allow', rows: 1}, hash: 'h'}
    expect(parseEventLine(JSON.stringify(line)).seq).toBe(3)
    // The data too, for the fields readers use: a statement without its text is no statement.
    expect(() => parseEventLine(JSON.stringify({...line, data: {}}))).toThrow(/event line is not valid: data\.sql: expected string/)
    expect(() => parseEventLine(JSON.stringify({...line, seq: '3'}))).toThrow(new DocumentError('event line', ['seq: expected number, received string']))
    expect(() => parseEventLine(JSON.stringify({...line, v: 2}))).toThrow(/event line is not valid: v: expected 1/)
  })

  it('refuses a published policy whose body is not a policy body, before trusting any of it', () => {
    const doc = {
      v: 1, target: 'app', version: 1, publishedAt: '2026-03-01T10:00:00.000Z', publisher: {subject: 'admin', issuer: 'https://idp.example', kind: 'human'},
      keyId: 'k', hash: 'h', sig: 's',
      body: {policy: 'none', rules: [], reviewers: [], masking: {unmask: [], mask: [], unmaskColumns: [], strategies: {}, onUntraceable: 'mask'}, approvals: {expiryMs: 900_000, windows: false}},
    }
    const refused = (d: unknown) => {
      try {
        verifyPublishedPolicy(JSON.stringify(d), new Map())
      } catch (e) {
        return e as PolicyStoreError
      }
      throw new Error('accepted')
    }
    expect(refused(doc).code).toBe('POLICY_UNKNOWN_KEY') // well-formed: it gets as far as the signature
    const bad = refused({...doc, body: {...doc.body, policy: 'lenient', rules: 'none'}})
    expect(bad.code).toBe('POLICY_MALFORMED')
    expect(bad.message).toMatch(/^the published policy is not valid: body\.policy: .*; body\.rules: expected a list \(each a map\), got "none"$/)
    // The body is read by dbgate.yaml's schema: a rule or masking setting it cannot run is refused too.
    const rule = refused({...doc, body: {...doc.body, rules: [{id: 'r', match: {class: 'write', sometimes: true}, action: 'allow'}]}})
    expect(rule.message).toMatch(/body\.rules\[0\]\.match\.sometimes: unknown key/)
    expect(refused({...doc, body: {...doc.body, masking: {}}}).message).toMatch(/body\.masking\.unmask: missing required key/)
  })
})
