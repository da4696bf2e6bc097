/**
 * A session log stored under a key other than the one its tunnel shipped it under: moved to
 * another day (so `--since` and a period's report, which prune by the key's dt=, never read it),
 * to another target, or copied over another session's object (two objects claiming one session,
 * the other session's log gone). The log itself is intact and signed, so only its place gives it
 * away: `sessions verify` and the report check it.
 */
import {afterAll, describe, expect, it} from 'vitest'
import {SessionReader} from '../../src/audit/read.js'
import {shipPending, sessionObjectKey} from '../../src/audit/shipper.js'
import {loadKeyRing, loadOrCreateInstallationKey} from '../../src/audit/signing.js'
import {verifySession} from '../../src/audit/verify.js'
import type {Bucket} from '../../src/bucket/index.js'
import {liveSession, removeTempDirs, tempDir} from './helpers.js'

afterAll(removeTempDirs)

const STARTED = new Date('2026-03-01T10:00:00.000Z')

async function shippedSession(id: string, shared?: {bucket: Bucket; spoolDir: string}) {
  const key = await loadOrCreateInstallationKey(await tempDir('dbgate-keys-'))
  const live = await liveSession(key, id, STARTED, shared)
  await live.write(3)
  await live.session.end('client-closed')
  const report = await shipPending({bucket: live.bucket, signer: key, spoolDir: live.spoolDir})
  expect(report.failed).toEqual([])
  return {...live, key}
}

describe('a log stored where its tunnel did not put it', () => {
  it('verifies where the shipper put it, and fails with OBJECT_KEY_MISMATCH wherever else it is stored', async () => {
    const {bucket} = await shippedSession('s-placed')
    const home = sessionObjectKey('s-placed', 'prod', STARTED)
    const {body} = await bucket.get(home)
    const keys = (await loadKeyRing(bucket)).keys
    const reader = new SessionReader(bucket, await tempDir('dbgate-cache-'))
    const [summary] = await reader.list()
    const {text} = await reader.loadSummary(summary!)
    expect(verifySession(text, keys, {objectKey: home})).toMatchObject({ok: true, problems: []})

    const elsewhere = [
      sessionObjectKey('s-placed', 'prod', '2019-01-01T00:00:00Z'), // another day: outside every recent period
      sessionObjectKey('s-placed', 'staging', STARTED), // another target
      sessionObjectKey('s-other', 'prod', STARTED), // over another session's object
      `sessions/dt=2026-03-01/target=prod/nested/s-placed.jsonl.gz`,
    ]
    for (const key of elsewhere) {
      const r = verifySession(text, keys, {objectKey: key})
      expect(r.ok, key).toBe(false)
      expect(r.problems.map((p) => p.code), key).toEqual(['OBJECT_KEY_MISMATCH'])
    }

    // Through the reader, as `sessions verify` and the report read the bucket.
    for (const key of elsewhere) await bucket.put(key, body)
    const all = await new SessionReader(bucket, await tempDir('dbgate-cache-')).list()
    expect(all).toHaveLength(elsewhere.length + 1)
    for (const s of all) {
      const {text: t} = await reader.loadSummary(s)
      const r = verifySession(t, keys, {objectKey: s.key})
      expect(r.ok, s.key).toBe(s.key === home)
    }
  })
})
