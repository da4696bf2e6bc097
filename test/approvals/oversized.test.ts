/**
 * Records far larger than any dbgate writes are not read: not by reviewers' lists (re-read every two
 * seconds by every open `dbgate approve`), not by the waiting tunnel or gateway worker (which polls
 * for a decision once a second and kept a copy of what it refused in rejected/).
 *
 * The attack: someone who writes the bucket plants a request of 17 MiB, and decision and outcome
 * files of a megabyte or more, so every reviewer's screen and every waiting tunnel holds (and
 * draws, and copies) them. Real tunnel, real IdP, real PostgreSQL, the file bucket.
 */
import {readdir, readFile, stat} from 'node:fs/promises'
import {fileURLToPath} from 'node:url'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {decide} from '../../src/approvals/review.js'
import {decisionKey, listRequests, newApprovalId, outcomeKey, readRequest, requestKey} from '../../src/approvals/store.js'
import type {Bucket} from '../../src/bucket/index.js'
import type {DbgateConfig} from '../../src/config/types.js'
import type {PipelineTunnel} from '../helpers/open.js'
import {withClient, type UpstreamInfo} from '../helpers/pg.js'
import {waitFor} from '../helpers/wait.js'
import {approvalSetting, watchNotices, type ApprovalSetting, type People} from './helpers.js'

const TARGET = ['allow: [engineering]', 'reviewers: [dba]', 'approvals:', '  expiry: 15m'].join('\n')

describe('records larger than any dbgate writes', () => {
  let p: People
  let db: UpstreamInfo
  let bucketUrl: string
  let bucket: Bucket
  let config: DbgateConfig
  let t: PipelineTunnel
  const file = (key: string) => path.join(fileURLToPath(bucketUrl), key)

  let setting: ApprovalSetting | undefined

  beforeAll(async () => {
    setting = await approvalSetting({database: 'oversized', target: TARGET, requester: 'alice', others: ['bob']})
    ;({p, db, bucketUrl, bucket, config, t} = setting)
  })
  afterAll(() => setting?.close())

  it('leaves them out of reviewers\' lists unread, refuses them in the tunnel without copying them, and still takes a real decision', async () => {
    const c = await t.client()
    const w = watchNotices(c)
    const held = c.query('create table after_oversized (id int)').then(
      () => 'ran',
      (e: Error) => e.message,
    )
    const id = await w.approvalId()
    const genuine = (await readRequest(bucket, id))!

    // A planted request of 17 MiB (valid, with an id of its own), and oversized decision and outcome
    // files for other requests: the list names each and reads none.
    const big = {...genuine, id: newApprovalId(), sql: `create index on orders (status) /* ${'x'.repeat(17 * 1024 * 1024)} */`}
    await bucket.put(requestKey(big.id), JSON.stringify(big))
    const other = {...genuine, id: newApprovalId()}
    await bucket.put(requestKey(other.id), JSON.stringify(other))
    const pad = 'y'.repeat(1024 * 1024)
    await bucket.put(decisionKey(other.id), JSON.stringify({v: 1, pad}))
    await bucket.put(outcomeKey(other.id), JSON.stringify({v: 1, pad}))
    const warnings: string[] = []
    const views = await listRequests(bucket, {onInvalid: (m) => warnings.push(m)})
    expect(views.map((v) => v.request.id).sort()).toEqual([id, other.id].sort())
    expect(views.find((v) => v.request.id === other.id)).toMatchObject({state: 'pending', decision: undefined, outcome: undefined})
    expect(warnings.join('\n')).toMatch(new RegExp(`approval request approvals/requests/${big.id}.json is \\d+ bytes, larger than any request`))
    expect(warnings.join('\n')).toMatch(new RegExp(`approval decision approvals/decisions/${other.id}.json is \\d+ bytes, larger than any decision`))
    expect(warnings.join('\n')).toMatch(new RegExp(`approval outcome approvals/outcomes/${other.id}.json is \\d+ bytes, larger than any outcome`))

    // A decision of 1 MiB on the waiting request: refused unread, and only a line of it kept.
    await bucket.put(decisionKey(id), JSON.stringify({v: 1, requestId: id, pad}))
    await waitFor(() => w.notices.some((n) => n.includes('was refused')), 'the oversized decision is refused')
    expect(w.notices.join('\n')).toMatch(/it is a file of \d+ bytes, larger than any decision \(\d+ bytes at most\), so it was not read/)
    const rejectedDir = file(`approvals/rejected/${id}`)
    // The file bucket writes a temporary file and renames it: only a renamed one is kept.
    const keptFiles = async () => (await readdir(rejectedDir).catch(() => [] as string[])).filter((f) => !f.startsWith('.dbgate-tmp-'))
    await waitFor(async () => (await keptFiles()).length === 1, 'the refusal is kept')
    const [kept] = await keptFiles()
    expect((await stat(path.join(rejectedDir, kept!))).size).toBeLessThan(4096)
    expect(await readFile(path.join(rejectedDir, kept!), 'utf8')).not.toContain('yyyy')
    await waitFor(async () => !(await bucket.head(decisionKey(id))), 'the slot is free again')

    await decide({bucket, config, reviewer: await p.reviewer('bob')}, {id, action: 'approve'})
    expect(await held).toBe('ran')
    expect(await withClient(db.url, async (x) => (await x.query("select to_regclass('public.after_oversized') is not null as made")).rows[0].made)).toBe(true)
  })
})

describe('a statement whose request would be larger than reviewers\' lists show', () => {
  const TARGET_WRITES = [TARGET, 'rules:', '  - id: writes-reviewed', '    match: {class: write}', '    action: require_approval', '    reason: writes are reviewed here'].join('\n')
  let setting: ApprovalSetting | undefined

  beforeAll(async () => {
    setting = await approvalSetting({database: 'oversized_bind', target: TARGET_WRITES, requester: 'alice', others: ['bob']})
    await withClient(setting.db.url, (c) => c.query('create table big_values (v text)'))
  })
  afterAll(() => setting?.close())

  it('is refused at once, saying why and what to do, and files nothing that would wait unseen', async () => {
    const {t, bucket, db} = setting!
    const c = await t.client()
    // 8,500 values of 2,100 bytes: each is kept to 2,048 bytes in the request, which still passes 16 MiB.
    const n = 8500
    const values = Array.from({length: n}, (_, i) => `${i}:${'v'.repeat(2100)}`)
    const sql = `insert into big_values values ${values.map((_, i) => `($${i + 1})`).join(', ')}`
    const e = (await c.query(sql, values).catch((x: Error) => x)) as Error & {code?: string; hint?: string}
    expect(e).toBeInstanceOf(Error)
    expect(e.message).toMatch(/rule writes-reviewed\) but is too large to show reviewers: its request would take 1\d\.\d MiB, and reviewers' lists leave out requests over 16 MiB/)
    expect(e.hint).toMatch(/fewer or shorter bound values/)
    expect(await listRequests(bucket)).toEqual([])
    expect(await withClient(db.url, async (x) => (await x.query('select count(*)::int as n from big_values')).rows[0].n)).toBe(0)
    // A statement of ordinary size is still held for a reviewer.
    const w = watchNotices(c)
    const held = c.query('insert into big_values values ($1)', ['small']).then(() => 'ran', (x: Error) => x.message)
    const id = await w.approvalId()
    expect((await listRequests(bucket)).map((v) => v.request.id)).toEqual([id])
    await decide({bucket, config: setting!.config, reviewer: await setting!.p.reviewer('bob')}, {id, action: 'approve'})
    expect(await held).toBe('ran')
  })
})
