import {execFileSync} from 'node:child_process'
import {symlink} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {BucketError, FileBucket, openBucket, S3Bucket, type Bucket} from '../../src/bucket/index.js'
import {removeTempDirs, tempDir} from '../audit/helpers.js'
import {TestS3} from '../audit/s3rver.js'

async function collect(b: Bucket, prefix: string) {
  const out = []
  for await (const o of b.list(prefix)) out.push(o)
  return out
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(BucketError)
  return (err as BucketError).code
}

let s3: TestS3
beforeAll(async () => {
  s3 = await TestS3.start()
})
afterAll(async () => {
  await s3.dispose()
})
afterAll(removeTempDirs)

const impls: [string, () => Promise<Bucket>][] = [
  ['file', async () => new FileBucket(await tempDir('dbgate-bucket-'))],
  ['s3', async () => s3.bucket(`p${Math.random().toString(36).slice(2)}`)],
]

describe.each(impls)('%s bucket', (_name, make) => {
  it('puts, gets, heads, lists by prefix and deletes', async () => {
    const b = await make()
    await b.put('sessions/dt=2026-03-01/target=prod/a.jsonl.gz', Buffer.from('one'))
    await b.put('sessions/dt=2026-03-02/target=prod/b.jsonl.gz', 'two')
    await b.put('keys/k1.json', '{}', {contentType: 'application/json'})

    const got = await b.get('sessions/dt=2026-03-01/target=prod/a.jsonl.gz')
    expect(got.body.toString()).toBe('one')
    expect(got.info.etag).not.toBe('')
    expect((await b.head('keys/k1.json'))?.size).toBe(2)
    expect(await b.head('keys/missing.json')).toBeUndefined()

    expect((await collect(b, 'sessions/')).map((o) => o.key).sort()).toEqual([
      'sessions/dt=2026-03-01/target=prod/a.jsonl.gz',
      'sessions/dt=2026-03-02/target=prod/b.jsonl.gz',
    ])
    // A prefix that ends inside a path segment still narrows the listing.
    expect((await collect(b, 'sessions/dt=2026-03-02')).map((o) => o.key)).toEqual(['sessions/dt=2026-03-02/target=prod/b.jsonl.gz'])

    await b.delete('keys/k1.json')
    await b.delete('keys/k1.json')
    expect(await b.head('keys/k1.json')).toBeUndefined()
    expect(await codeOf(b.get('keys/k1.json'))).toBe('OBJECT_NOT_FOUND')
  })

  it('changes the etag when an object is replaced', async () => {
    const b = await make()
    const first = await b.put('x/y', 'short')
    const before = (await b.head('x/y'))!.etag
    await b.put('x/y', 'a longer body')
    const after = (await b.head('x/y'))!.etag
    expect(after).not.toBe(before)
    expect(first.size).toBe(5)
  })

  it('rejects keys that could escape the bucket', async () => {
    const b = await make()
    for (const key of ['../x', '/abs', 'a//b', 'a/./b', '']) expect(await codeOf(b.put(key, 'x'))).toBe('INVALID_KEY')
  })
})

describe('file bucket create-exclusive', () => {
  it('lets exactly one of many concurrent writers win', async () => {
    const b = new FileBucket(await tempDir('dbgate-bucket-'))
    const results = await Promise.allSettled(Array.from({length: 20}, (_, i) => b.put('approvals/req-1/decision.json', `writer ${i}`, {ifNoneMatch: true})))
    const won = results.filter((r) => r.status === 'fulfilled')
    expect(won).toHaveLength(1)
    for (const r of results) if (r.status === 'rejected') expect((r.reason as BucketError).code).toBe('OBJECT_EXISTS')
    const winner = results.indexOf(won[0]!)
    expect((await b.get('approvals/req-1/decision.json')).body.toString()).toBe(`writer ${winner}`)
    // No temp files are left behind or listed.
    expect((await collect(b, '')).map((o) => o.key)).toEqual(['approvals/req-1/decision.json'])
  })
})

describe('file bucket objects that are not regular files', () => {
  it('lists symbolic links, FIFOs and sockets under the prefix, and refuses to read them, at once', async () => {
    const dir = await tempDir('dbgate-bucket-')
    const b = new FileBucket(dir)
    const day = 'sessions/dt=2026-03-01/target=prod'
    await b.put(`${day}/real.jsonl.gz`, 'real')
    await b.put('elsewhere/other.jsonl.gz', 'another log')
    await symlink(join(dir, 'elsewhere', 'other.jsonl.gz'), join(dir, day, 'link.jsonl.gz'))
    execFileSync('mkfifo', [join(dir, day, 'fifo.jsonl.gz')])
    const keys = (await collect(b, 'sessions/')).map((o) => o.key)
    expect(keys).toEqual([`${day}/fifo.jsonl.gz`, `${day}/link.jsonl.gz`, `${day}/real.jsonl.gz`])
    for (const name of ['link', 'fifo']) {
      const err = await b.get(`${day}/${name}.jsonl.gz`).then(
        () => undefined,
        (e: unknown) => e as BucketError,
      )
      expect(err?.code, name).toBe('BUCKET_ERROR')
      expect(err?.message, name).toContain('is not a regular file')
    }
    expect((await b.get(`${day}/real.jsonl.gz`)).body.toString()).toBe('real')
  })
})

describe('s3 bucket', () => {
  it('probe finds out that a store ignores If-None-Match on PUT', async () => {
    // s3rver accepts the overwrite, which is exactly what the probe exists to catch.
    expect(await s3.bucket('cond').supportsConditionalWrites()).toBe(false)
  })

  it('refuses create-exclusive writes on a store that ignores If-None-Match when probing', async () => {
    const b = s3.bucket('cond-probe', {conditionalWrites: 'probe'})
    expect(await codeOf(b.put('approvals/r/decision.json', 'x', {ifNoneMatch: true}))).toBe('CONDITIONAL_WRITE_UNSUPPORTED')
    expect(await b.head('approvals/r/decision.json')).toBeUndefined()
  })

  it('reports a missing bucket and a dead endpoint by code, without credentials in the message', async () => {
    const missing = new S3Bucket('s3://no-such-bucket/x', {endpoint: s3.endpoint, forcePathStyle: true, credentials: {accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER'}, maxAttempts: 1})
    expect(await codeOf(missing.put('k', 'v'))).toBe('BUCKET_NOT_FOUND')

    const dead = new S3Bucket('s3://audit/x', {endpoint: 'http://127.0.0.1:1', forcePathStyle: true, credentials: {accessKeyId: 'AKIDSECRETLOOKING', secretAccessKey: 'very-secret-value'}, maxAttempts: 1})
    const err = await dead.put('k', 'v').catch((e: unknown) => e as BucketError)
    expect(err).toBeInstanceOf(BucketError)
    expect((err as BucketError).code).toBe('BUCKET_UNREACHABLE')
    expect((err as BucketError).retryable).toBe(true)
    const text = JSON.stringify({m: (err as Error).message, c: (err as Error).cause, s: (err as Error).stack})
    expect(text).not.toContain('very-secret-value')
    expect(text).not.toContain('AKIDSECRETLOOKING')
  })
})

describe('openBucket', () => {
  it('picks the implementation by scheme', () => {
    expect(openBucket('file:///tmp/x')).toBeInstanceOf(FileBucket)
    expect(openBucket({url: 's3://b/p', endpoint: 'http://127.0.0.1:9', forcePathStyle: true})).toBeInstanceOf(S3Bucket)
    expect(() => openBucket('gs://b/p')).toThrow(/unsupported bucket URL/)
  })
})
