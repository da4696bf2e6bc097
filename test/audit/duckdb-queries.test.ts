/**
 * The bucket is a layout a query engine reads as it is: the DuckDB queries docs/recording.md gives
 * auditors, taken from the page itself and run by a real DuckDB over the logs that real tunnels
 * shipped for two signed-in people. Only the bucket's address is changed (a local folder, as the
 * page says for a `file://` bucket), so the page stays true or this fails.
 */
import {mkdtemp, readFile, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {DuckDBInstance} from '@duckdb/node-api'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {people, type People} from '../approvals/helpers.js'
import {openPipelineTunnel} from '../helpers/open.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'

/** The ```sql block under the page's "### DuckDB" heading. */
async function documentedDuckdbSql(): Promise<string> {
  const page = await readFile(path.resolve('docs/recording.md'), 'utf8')
  const section = page.slice(page.indexOf('\n### DuckDB\n'))
  const block = /```sql\n([\s\S]*?)```/.exec(section)
  if (!block) throw new Error('docs/recording.md: no ```sql block under "### DuckDB"')
  return block[1]!
}

/** The page's script for a local bucket: without the S3 set-up lines it marks as not needed, reading `dir`. */
function forLocalBucket(sql: string, dir: string): string {
  const lines = sql.split('\n').filter((l) => !/^\s*(INSTALL httpfs|CREATE SECRET)/i.test(l))
  const script = lines.join('\n')
  const s3 = /'s3:\/\/[^']*\/sessions\/\*\/\*\/\*\.jsonl\.gz'/
  if (!s3.test(script)) throw new Error('docs/recording.md: the DuckDB view no longer reads s3://…/sessions/*/*/*.jsonl.gz')
  return script.replace(s3, `'${dir}/sessions/*/*/*.jsonl.gz'`)
}

describe('the DuckDB queries of docs/recording.md, over a bucket real tunnels shipped to', () => {
  let p: People
  let db: UpstreamInfo
  let bucketDir: string
  let script: string

  beforeAll(async () => {
    ;[p, db] = await Promise.all([people(), createTestDatabase('duckdb')])
    await withClient(db.url, (c) => c.query('create table orders (id int primary key, total int); insert into orders values (1, 10), (2, 20)'))
    bucketDir = await mkdtemp(path.join(tmpdir(), 'dbgate-duckdb-'))
    await Promise.all([p.login('alice'), p.login('bob')])
    const identity = (user: string) => ({issuer: p.f.dev.issuer, clientId: p.f.dev.cliClientId, env: p.env(user)})
    // alice: three reads and a DELETE with no WHERE, which the default policy refuses.
    const a = await openPipelineTunnel(db, '', {top: `bucket: file://${bucketDir}`, identity: identity('alice')})
    const ac = await a.client()
    for (const id of [1, 2, 3]) await ac.query('select total from orders where id = $1', [id])
    await expect(ac.query('delete from orders')).rejects.toThrow(/dbgate/)
    // bob: two reads.
    const b = await openPipelineTunnel(db, '', {top: `bucket: file://${bucketDir}`, identity: identity('bob')})
    const bc = await b.client()
    await bc.query('select count(*) from orders')
    await bc.query('select sum(total) from orders')
    await Promise.all([a.close(), b.close()])
    script = forLocalBucket(await documentedDuckdbSql(), bucketDir)
  }, 120_000)
  afterAll(async () => {
    await p?.close()
    if (bucketDir) await rm(bucketDir, {recursive: true, force: true})
  })

  it('counts statements per user and decision, as the page says it does', async () => {
    const duck = await (await DuckDBInstance.create(':memory:')).connect()
    try {
      // The view, then the page's query: DuckDB runs the script and answers with the last statement.
      const rows = (await duck.runAndReadAll(script)).getRowObjectsJson()
      expect(rows).toEqual(
        expect.arrayContaining([
          {user: 'alice@example.com', decision: 'allow', n: '3'},
          {user: 'alice@example.com', decision: 'deny', n: '1'},
          {user: 'bob@example.com', decision: 'allow', n: '2'},
        ]),
      )
      expect(rows).toHaveLength(3)
    } finally {
      duck.closeSync()
    }
  })

  it("reads the partitions from the folders: dt as the sessions' day, target as the target's name", async () => {
    const duck = await (await DuckDBInstance.create(':memory:')).connect()
    try {
      const view = script.slice(0, script.indexOf(';') + 1)
      await duck.run(view)
      const rows = (await duck.runAndReadAll("select cast(dt as varchar) as dt, target, epoch_ms(ts) as started from dbgate_events where type = 'session.start'")).getRowObjectsJson()
      expect(rows).toHaveLength(2)
      for (const r of rows) expect({dt: r.dt, target: r.target}).toEqual({dt: new Date(Number(r.started)).toISOString().slice(0, 10), target: 'app'})
    } finally {
      duck.closeSync()
    }
  })
})
