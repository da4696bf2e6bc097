import {mkdtempSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {SearchMatch} from '../../src/audit/read.js'
import {openBucket} from '../../src/bucket/index.js'
import SessionsSearch from '../../src/commands/sessions/search.js'
import {produceReport} from '../../src/report/produce.js'
import {captureCommand} from '../helpers/capture.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {auditorEnv, localBucketUrl} from './helpers.js'

/**
 * A statement's tables are recorded as its text wrote them: `delete from users` records `users`,
 * `delete from public.users` records `public.users`. `sessions search --table public.users` (the
 * form its help suggests) matched only the second, so every unqualified write to the table, which
 * is most of them, was missing from the answer; and the report counted `users` and `public.users`
 * as two tables, each with part of the activity. An unqualified name is public's, as the
 * guardrails read it (search_path cannot be changed through dbgate).
 */
const root = path.join(import.meta.dirname, '..', '..')
const savedEnv = {...process.env}

const SPELLINGS = ['delete from users where id = 1', 'DELETE FROM public.users WHERE id = 2', 'delete from "public"."users" where id = 3', 'select count(*) from USERS', 'update Public.Users set name = name where id = 4']

describe('a table however the statement spelled its name', () => {
  let db: UpstreamInfo
  let t: PipelineTunnel | undefined
  let bucketUrl: string

  beforeAll(async () => {
    auditorEnv()
    db = await createTestDatabase('tablenames')
    await withClient(db.url, (c) => c.query('create table public.users (id int primary key, name text); insert into public.users values (1, \'a\'), (2, \'b\'), (3, \'c\'), (4, \'d\')'))
    bucketUrl = localBucketUrl('tablenames')
    t = await openPipelineTunnel(db, '', {top: `bucket: ${bucketUrl}`})
    const c = await t.client()
    for (const sql of SPELLINGS) await c.query(sql)
    await t.close()
    t = undefined
  }, 60_000)
  afterAll(async () => {
    await t?.close()
    process.env = savedEnv
  })

  it('sessions search --table finds every spelling, qualified or not', async () => {
    for (const table of ['public.users', 'users', 'PUBLIC.USERS']) {
      const r = await captureCommand(() => SessionsSearch.run(['--bucket', bucketUrl, '--json', '--table', table], {root}))
      const found = (JSON.parse(r.stdout) as {matches: SearchMatch[]}).matches.map((m) => m.sql)
      expect(found.sort(), table).toEqual([...SPELLINGS].sort())
    }
  })

  it('the report counts them as one table', async () => {
    const {report} = await produceReport({
      bucket: openBucket(bucketUrl),
      cacheDir: mkdtempSync(path.join(tmpdir(), 'dbgate-tablenames-cache-')),
      since: new Date(Date.now() - 86_400_000),
      until: new Date(Date.now() + 60_000),
      frameworks: ['soc2'],
      outDir: mkdtempSync(path.join(tmpdir(), 'dbgate-tablenames-out-')),
      generator: 'dbgate test',
    })
    expect(report.topTables.filter((r) => /users/i.test(r.table))).toEqual([{table: 'public.users', statements: SPELLINGS.length, denied: 0}])
  })
})
