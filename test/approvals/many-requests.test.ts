/**
 * Reviewers' lists read a bounded number of records at once, however many a bucket holds.
 *
 * The attack: anyone who writes the bucket (or a client holding statements on many connections)
 * fills approvals/requests/ with a few hundred requests. The list read them all at once: on a file
 * bucket under a process's file limit (256 open files by default on macOS) every read past the limit
 * failed with EMFILE, the whole list with it, and every reviewer's screen said only "Could not
 * refresh" while real requests waited. Here a real file bucket is held to 64 reads in flight, as
 * such a limit holds it.
 */
import {describe, expect, it} from 'vitest'
import {listRequests, newApprovalId, requestKey} from '../../src/approvals/store.js'
import type {ApprovalRequest} from '../../src/approvals/types.js'
import {openBucket, type Bucket} from '../../src/bucket/index.js'
import {tempBucketUrl} from './helpers.js'

/** `bucket`, whose reads fail as a file system's do past its open-file limit. */
function withFileLimit(bucket: Bucket, limit: number): Bucket & {peak: number} {
  let open = 0
  const limited = Object.create(bucket) as Bucket & {peak: number}
  limited.peak = 0
  limited.get = async (key) => {
    if (open >= limit) throw Object.assign(new Error(`EMFILE: too many open files, open '${key}'`), {code: 'EMFILE'})
    open++
    limited.peak = Math.max(limited.peak, open)
    try {
      return await bucket.get(key)
    } finally {
      open--
    }
  }
  return limited
}

describe('a bucket holding hundreds of requests', () => {
  it('is listed whole, a few reads at a time', async () => {
    const bucket = openBucket(tempBucketUrl())
    const now = new Date()
    const base: Omit<ApprovalRequest, 'id'> = {
      v: 1,
      target: 'app',
      database: 'app',
      requester: {subject: 'mallory', groups: ['engineering'], issuer: 'https://login.example.com', kind: 'human'},
      sessionId: 's',
      connectionId: 1,
      sql: 'create table t (id int)',
      statements: [],
      class: 'ddl',
      ruleId: 'default.ddl-approval',
      reason: 'schema changes need a reviewer',
      reviewers: ['dba'],
      createdAt: now.toISOString(),
      expiresAt: new Date(now.getTime() + 900_000).toISOString(),
      windows: false,
      sealKey: 'x',
      host: 'h',
      recent: [],
    }
    for (let i = 0; i < 400; i++) {
      const id = newApprovalId()
      await bucket.put(requestKey(id), JSON.stringify({...base, id}))
    }
    const limited = withFileLimit(bucket, 64)
    const views = await listRequests(limited)
    expect(views).toHaveLength(400)
    expect(limited.peak).toBeLessThanOrEqual(64)
  })
})
