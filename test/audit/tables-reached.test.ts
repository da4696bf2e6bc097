import {mkdtempSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import type pg from 'pg'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {SearchMatch} from '../../src/audit/read.js'
import SessionsSearch from '../../src/commands/sessions/search.js'
import {produceReport} from '../../src/report/produce.js'
import {captureCommand} from '../helpers/capture.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {auditorEnv, localBucketUrl} from './helpers.js'

/**
 * A statement's recorded `tables` were the ones its text names, while the guardrails judged it by
 * every relation it reaches: behind a view, in the body of a function or an operator, through a
 * foreign key cascading from its write. So `select public.salary_of(1)` read hr.salaries, and
 * `delete from scratch.src …` deleted hr rows (refused by a rule on them), and neither was found by
 * `sessions search --table`, nor counted against those tables in the report. They are now recorded
 * with every table the guardrails saw.
 */
const root = path.join(import.meta.dirname, '..', '..')
const savedEnv = {...process.env}

describe('recorded tables are the ones the guardrails judged', () => {
  let db: UpstreamInfo
  let t: PipelineTunnel | undefined
  let bucketUrl: string
  const direct = <T>(fn: (c: pg.Client) => Promise<T>) => withClient(db.url, fn)

  // Each reads hr.salaries without naming it.
  const READS = [
    'select id from public.pay where id = 1',
    'select public.salary_of(1) as s',
    'select public.outer_pay(1) as s',
    'select 1 operator(public.>>>) 8999 as rich',
    'select count(*) as n from public.team_pay',
    'select public.pay_of(1) as s',
  ]
  const CASCADE = 'delete from scratch.src where id = 1'

  beforeAll(async () => {
    // The auditor's cache of this run only, and no configured bucket.
    auditorEnv()
    db = await createTestDatabase('tablesreached')
    await direct((c) =>
      c.query(`
        create schema hr; create schema scratch;
        create table hr.salaries (id int primary key, amount int); insert into hr.salaries values (1, 9000);
        create view public.pay as select id, amount from hr.salaries;
        create table scratch.src (id int primary key); insert into scratch.src values (1);
        create table hr.on_delete (id int, src_id int references scratch.src on delete cascade); insert into hr.on_delete values (1, 1);
        create table public.teams (id int, name text); insert into public.teams values (1, 'ops');
        create function public.salary_of(i int) returns int language sql stable as $$ select amount from hr.salaries where id = i $$;
        create function public.pay_of(i int) returns int language plpgsql stable as $$ begin return (select amount from public.pay where id = i); end $$;
        create function public.outer_pay(i int) returns int language sql stable as $$ select public.salary_of(i) + 0 $$;
        create function public.is_rich(i int, floor int) returns boolean language sql stable as $$ select exists (select 1 from hr.salaries s where s.id = i and s.amount > floor) $$;
        create operator public.>>> (leftarg = int, rightarg = int, function = public.is_rich);
        create view public.team_pay as select t.id, public.salary_of(t.id) as pay from public.teams t;
      `),
    )
    bucketUrl = localBucketUrl('tablesreached')
    t = await openPipelineTunnel(db, ['rules:', '  - id: no-hr-cascade', '    match: {tables: ["hr.on_delete"]}', '    action: deny', '    reason: hr.on_delete is kept by HR'].join('\n'), {top: `bucket: ${bucketUrl}`})
    const c = await t.client()
    for (const sql of READS) await c.query(sql)
    const refused = (await c.query(CASCADE).catch((e: Error) => e)) as Error
    expect(refused.message).toMatch(/no-hr-cascade|hr.on_delete is kept by HR/)
    await t.close()
    t = undefined
    expect(await direct(async (d) => (await d.query('select count(*)::int n from hr.on_delete')).rows[0].n)).toBe(1)
  }, 60_000)
  afterAll(async () => {
    await t?.close()
    process.env = savedEnv
  })

  const search = async (...args: string[]): Promise<SearchMatch[]> => {
    const r = await captureCommand(() => SessionsSearch.run(['--bucket', bucketUrl, '--json', ...args], {root}))
    return (JSON.parse(r.stdout) as {matches: SearchMatch[]}).matches
  }

  it('sessions search --table finds every read of a table through views, function bodies and operators', async () => {
    for (const table of ['hr.salaries', 'salaries']) {
      const found = (await search('--table', table)).map((m) => m.sql)
      for (const sql of READS) expect(found, `${table}: ${sql}`).toContain(sql)
    }
  })

  it('sessions search --table --denied finds a write refused for the table its cascade reaches', async () => {
    const found = await search('--table', 'hr.on_delete', '--denied')
    expect(found.map((m) => [m.sql, m.decision])).toEqual([[CASCADE, 'deny']])
  })

  it('the report counts them against those tables', async () => {
    const {report} = await produceReport({
      bucket: (await import('../../src/bucket/index.js')).openBucket(bucketUrl),
      cacheDir: mkdtempSync(path.join(tmpdir(), 'dbgate-tablesreached-cache-')),
      since: new Date(Date.now() - 86_400_000),
      until: new Date(Date.now() + 60_000),
      frameworks: ['soc2'],
      outDir: mkdtempSync(path.join(tmpdir(), 'dbgate-tablesreached-out-')),
      generator: 'dbgate test',
    })
    const row = (name: string) => report.topTables.find((r) => r.table === name)
    expect(row('hr.salaries')?.statements).toBeGreaterThanOrEqual(READS.length)
    expect(row('hr.on_delete')).toMatchObject({statements: 1, denied: 1})
  })
})
