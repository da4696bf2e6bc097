import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {afterAll, beforeAll, describe, expect, it, vi} from 'vitest'
import type pg from 'pg'
import {serialize} from 'pg-protocol'
import PolicyCheck from '../../src/commands/policy/check.js'
import {TargetFunctionCatalog} from '../../src/connect/function-catalog.js'
import {catalogQueryFor, type ClosableCatalogQuery} from '../../src/masking/catalog-query.js'
import {analyze, catalogKeys} from '../../src/policy/index.js'
import {AnalysisCache} from '../../src/policy/cache.js'
import {createStatementHook, judgeStatements} from '../../src/policy/statement-guard.js'
import type {PolicyRule} from '../../src/policy/types.js'
import type {StatementContext} from '../../src/proxy/seam.js'
import {loadParser} from '../../src/sql/parser.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {payrollDatabase} from '../helpers/payroll.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {codes, errorOf} from '../helpers/raw-client.js'

/**
 * `tables:` rules judge the tables a statement reaches, not only the names it writes: the tables
 * behind views, views on views and materialized views, a partitioned table's partitions and a
 * table's inheritance children, and the statistics views, which show
 * samples of every table. Each of these read hr data past a rule on `hr.*` before.
 */
type Refusal = Error & {code?: string; detail?: string; hint?: string}

const SETUP = `
  create schema hr;
  create table hr.salaries (id int primary key, person text, amount int);
  insert into hr.salaries select g, 'person ' || g, g * 1000 from generate_series(1, 200) g;
  create statistics hr.salaries_mcv (mcv) on id, amount from hr.salaries;
  create statistics hr.salaries_expr on (amount * 2) from hr.salaries;
  create table public.teams (id int, name text);
  insert into public.teams select g, 'team ' || g from generate_series(1, 20) g;
  create view public.staff_directory as select id, person from hr.salaries;
  create view public.staff_names as select person from public.staff_directory;
  create materialized view public.pay_summary as select count(*) as n, sum(amount) as total from hr.salaries;
  create view public.team_pay as select t.name, s.amount from public.teams t join hr.salaries s on s.id = t.id;
  create view public.rich as select name from public.teams where id in (select id from hr.salaries where amount > 5000);
  create view public.team_list as select id, name from public.teams;
  create view public.team_list2 as select * from public.team_list;
  create view public.stats_copy as select schemaname, tablename, attname, most_common_vals::text as most_common_vals from pg_stats;
  create view hr.team_names as select name from public.teams;
  create view hr.team_salaries as select amount from hr.salaries;
  create view public.deep0 as select id, person from hr.salaries;
  create view public.deep1 as select * from public.deep0;
  create view public.deep2 as select * from public.deep1;
  create view public.deep3 as select * from public.deep2;
  create view public.deep4 as select * from public.deep3;
  create view public.deep5 as select * from public.deep4;
  create view public.deep6 as select * from public.deep5;
  create view public.deep7 as select * from public.deep6;
  create view public.deep8 as select * from public.deep7;
  create view public.deep9 as select * from public.deep8;
  create table public.payroll (id int, amount int) partition by range (id);
  create table hr.payroll_2026 partition of public.payroll for values from (0) to (1000);
  insert into public.payroll values (1, 100);
  create table public.people (id int);
  create table hr.people_private (salary int) inherits (public.people);
  create view public.payroll_view as select * from public.payroll;
  analyze;
`

/** Every relation that reads hr.salaries without naming it, with how the refusal names the route. */
const HIDDEN: readonly [string, string][] = [
  ['staff_directory', 'hr.salaries, through the view public.staff_directory'],
  ['public.staff_directory', 'hr.salaries, through the view public.staff_directory'],
  ['staff_names', 'hr.salaries, through the view public.staff_names, over the view public.staff_directory'],
  ['pay_summary', 'hr.salaries, through the materialized view public.pay_summary'],
  ['team_pay', 'hr.salaries, through the view public.team_pay'],
  ['rich', 'hr.salaries, through the view public.rich'],
  ['payroll', 'hr.payroll_2026, through the partitioned table public.payroll'],
  ['payroll_view', 'hr.payroll_2026, through the view public.payroll_view, over the partitioned table public.payroll'],
  ['people', 'hr.people_private, through the table public.people'],
]

/** The statistics relations, each with a query that reads hr's sampled values from it. */
const STATISTICS: readonly [string, string][] = [
  ['pg_stats', "select most_common_vals::text, histogram_bounds::text from pg_stats where schemaname = 'hr'"],
  ['pg_stats', "select attname, most_common_vals::text from pg_catalog.pg_stats where tablename = 'salaries'"],
  ['pg_stats_ext', "select most_common_vals from pg_stats_ext where schemaname = 'hr'"],
  ['pg_stats_ext_exprs', "select most_common_vals::text from pg_stats_ext_exprs where schemaname = 'hr'"],
  ['pg_statistic', "select stavalues1::text from pg_statistic where starelid = 'hr.salaries'::regclass"],
  ['pg_statistic_ext_data', 'select stxdmcv::text from pg_catalog.pg_statistic_ext_data'],
  ['pg_stats', "select most_common_vals::text from public.stats_copy where schemaname = 'hr'"],
]

/** The forms a read of `rel` can take; each must be judged the same. */
function forms(rel: string): string[] {
  return [
    `select * from ${rel}`,
    `table ${rel}`,
    `with x as (select * from ${rel}) select * from x`,
    `select * from (select * from ${rel}) s`,
    `select (select count(*) from ${rel})`,
    `select * from public.teams t cross join ${rel} limit 1`,
    `copy (select * from ${rel}) to stdout`,
    `explain analyze select * from ${rel}`,
    `prepare p_${rel.replace(/\W/g, '_')} as select * from ${rel}`,
  ]
}

/** Statistics queries in the same forms (a query rather than a relation). */
function statisticsForms(query: string): string[] {
  return [query, `with x as (${query}) select * from x`, `select * from (${query}) s`, `copy (${query}) to stdout`, `explain analyze ${query}`, `prepare p_stats as ${query}`]
}

async function outcome(c: pg.Client, sql: string, values?: unknown[]): Promise<Refusal | undefined> {
  return (await c.query(values ? {text: sql, values} : sql).then(
    () => undefined,
    (e: Refusal) => e,
  )) as Refusal | undefined
}

async function refused(c: pg.Client, sql: string, values?: unknown[]): Promise<Refusal> {
  const e = await outcome(c, sql, values)
  expect(e, sql).toBeInstanceOf(Error)
  expect(e!.code, `${sql}: ${e!.message}`).toBe('42501')
  return e!
}

describe('tables: rules see the tables behind views and the statistics views', () => {
  let db: UpstreamInfo
  let deny: PipelineTunnel
  let approval: PipelineTunnel
  let allowList: PipelineTunnel
  const direct = <T>(fn: (c: pg.Client) => Promise<T>) => withClient(db.url, fn)

  beforeAll(async () => {
    db = await createTestDatabase()
    await direct((c) => c.query(SETUP))
    deny = await openPipelineTunnel(
      db,
      [
        'rules:',
        '  - id: no-hr-reads',
        '    match: {class: read, tables: ["hr.*"]}',
        '    action: deny',
        '    reason: hr data is not read through this target',
        '  - id: no-hr-writes',
        '    match: {class: write, tables: ["hr.*"]}',
        '    action: deny',
        '    reason: hr data is not changed through this target',
      ].join('\n'),
    )
    approval = await openPipelineTunnel(db, ['rules:', '  - id: hr-reads-reviewed', '    match: {class: read, tables: ["hr.*"]}', '    action: require_approval', '    reason: hr reads are reviewed'].join('\n'))
    allowList = await openPipelineTunnel(
      db,
      [
        'rules:',
        '  - id: public-reads',
        '    match: {class: read, tables: ["public.*", "hr.team_*"]}',
        '    action: allow',
        '  - id: other-reads',
        '    match: {class: read}',
        '    action: deny',
        '    reason: only public tables are read through this target',
      ].join('\n'),
    )
  })
  afterAll(async () => {
    await deny?.close()
    await approval?.close()
    await allowList?.close()
  })

  it('refuses a read of hr data through a view, a view on a view, a materialized view or a join view, in every form, and lets views over public tables run', async () => {
    const c = await deny.client()
    for (const [rel, route] of HIDDEN) {
      for (const sql of forms(rel)) {
        const e = await refused(c, sql)
        expect(e.message, sql).toBe('dbgate: statement denied by rule no-hr-reads: hr data is not read through this target')
        expect(e.detail, sql).toContain(route)
      }
      // Extended protocol: one Parse, Bind and Execute.
      const e = await refused(c, `select * from ${rel} where $1::int = 1`, [1])
      expect(e.detail).toContain(route)
    }
    // Nothing was prepared: an EXECUTE of it finds nothing to run.
    const e = await outcome(c, 'execute p_staff_directory')
    expect(e?.code).not.toBe(undefined)
    // Views over public tables, and public tables, stay allowed in the same forms.
    for (const sql of [
      ...forms('team_list').filter((s) => !s.startsWith('prepare')),
      ...forms('public.team_list2').filter((s) => !s.startsWith('prepare')),
      'select count(*) from public.teams',
      'select * from team_list l join public.teams t using (id) limit 1',
    ]) {
      expect(await outcome(c, sql), sql).toBeUndefined()
    }
    expect(await outcome(c, 'select * from team_list where id = $1', [3])).toBeUndefined()
    expect(await outcome(c, 'prepare p_public as select * from team_list2')).toBeUndefined()
    expect((await c.query('execute p_public')).rows).toHaveLength(20)
    const {rows} = await c.query('select name from team_list2 where id = 2')
    expect(rows).toEqual([{name: 'team 2'}])
  })

  it('refuses writes to hr tables through an updatable view, and leaves the table as it was', async () => {
    const c = await deny.client()
    const e = await refused(c, "update public.staff_directory set person = 'changed' where id = 1")
    expect(e.message).toBe('dbgate: statement denied by rule no-hr-writes: hr data is not changed through this target')
    expect(e.detail).toContain('hr.salaries, through the view public.staff_directory')
    expect(await direct(async (d) => (await d.query('select person from hr.salaries where id = 1')).rows)).toEqual([{person: 'person 1'}])
  })

  it('counts every statistics view and catalog as reading every table, and says why', async () => {
    const c = await deny.client()
    for (const [rel, query] of STATISTICS) {
      for (const sql of statisticsForms(query)) {
        const e = await refused(c, sql)
        expect(e.message, sql).toBe('dbgate: statement denied by rule no-hr-reads: hr data is not read through this target')
        expect(e.detail, sql).toContain(`pg_catalog.${rel} shows values sampled from the columns of every analysed table`)
      }
      await refused(c, `select * from (${query}) s where $1::int = 1`, [1])
    }
  })

  it('holds the same reads for approval under a require_approval rule', async () => {
    const c = await approval.client()
    for (const [rel, route] of HIDDEN) {
      const e = await refused(c, `select * from ${rel}`)
      expect(e.message).toMatch(/^dbgate: statement requires approval by a reviewer \(rule hr-reads-reviewed\): hr reads are reviewed/)
      expect(e.detail).toContain(route)
    }
    for (const [, query] of STATISTICS) {
      const e = await refused(c, query)
      expect(e.message).toMatch(/\(rule hr-reads-reviewed\)/)
    }
  })

  it('does not let an allow-list carry a view whose tables it does not list', async () => {
    const c = await allowList.client()
    for (const [rel, route] of [...HIDDEN, ['hr.team_salaries', 'hr.salaries, through the view hr.team_salaries'] as [string, string]]) {
      for (const sql of [`select * from ${rel}`, `with x as (select * from ${rel}) select * from x`, `table ${rel}`]) {
        const e = await refused(c, sql)
        expect(e.message, sql).toBe('dbgate: statement denied by rule other-reads: only public tables are read through this target')
        expect(e.detail, sql).toContain(route)
      }
    }
    for (const [, query] of STATISTICS) {
      const e = await refused(c, query)
      expect(e.message).toMatch(/rule other-reads/)
    }
    // What the list does carry still runs: public tables, views over them, and an hr view the list names over public tables.
    for (const sql of ['select count(*) from public.teams', 'select count(*) from team_list', 'table team_list2', 'select count(*) from hr.team_names', 'select * from team_list l join teams t using (id) limit 1']) {
      expect(await outcome(c, sql), sql).toBeUndefined()
    }
  })

  it('fails closed on views nested deeper than it follows', async () => {
    const c = await deny.client()
    const e = await refused(c, 'select * from deep9')
    expect(e.detail).toMatch(/nests views deeper than 8 levels, so dbgate cannot see which tables are behind it/)
    // Shallower chains are followed to the table.
    expect((await refused(c, 'select * from deep3')).detail).toContain('hr.salaries, through the view public.deep3, over the view public.deep2, over the view public.deep1, over the view public.deep0')
  })
})

describe('a view changed under a prepared statement', () => {
  let db: UpstreamInfo
  let t: PipelineTunnel

  beforeAll(async () => {
    db = await createTestDatabase()
    await withClient(db.url, (c) => c.query('create schema hr; create table hr.salaries (id int, person text); create table public.teams (id int, name text)'))
    t = await openPipelineTunnel(db, ['rules:', '  - id: no-hr-reads', '    match: {class: read, tables: ["hr.*"]}', '    action: deny', '  - id: ddl', '    match: {class: ddl}', '    action: allow'].join('\n'))
  })
  afterAll(() => t?.close())

  it('judges an EXECUTE by what the view reads now', async () => {
    const c = await t.client()
    await c.query('create view public.sneaky as select id, name from public.teams')
    await c.query('prepare p_sneaky as select * from sneaky')
    await c.query('execute p_sneaky')
    // Replaced behind the tunnel's back; the next DDL through the tunnel has the catalog read again.
    await withClient(db.url, (d) => d.query('create or replace view public.sneaky as select id, person as name from hr.salaries'))
    await c.query('create table public.unrelated (id int)')
    const e = await refused(c, 'execute p_sneaky')
    expect(e.message).toMatch(/rule no-hr-reads/)
    expect(e.detail).toContain('hr.salaries, through the view public.sneaky')
  })

  it('judges a named extended-protocol statement again when it is bound after the view it reads was replaced', async () => {
    await withClient(db.url, (d) => d.query("insert into hr.salaries values (4242, 'SECRET-PERSON')"))
    const c = await t.client()
    await c.query('create view public.shell_named as select id, name from public.teams')
    // node-postgres sends Parse once per name and client, then only Bind and Execute.
    const named = {name: 'shell-named', text: 'select * from shell_named where id > $1', values: [0]}
    await c.query(named)
    for (const replace of ['through the tunnel', 'outside it']) {
      const ddl = 'create or replace view public.shell_named as select id, person as name from hr.salaries'
      if (replace === 'through the tunnel') await c.query(ddl)
      else {
        await withClient(db.url, (d) => d.query(ddl.replace('hr.salaries', 'hr.salaries where id > 0')))
        // The next DDL through the tunnel has the catalog read again, as its time to live would.
        await c.query(`create table if not exists public.unrelated_named (id int)`)
      }
      const e = (await c.query(named).catch((x: Error) => x)) as Refusal
      expect(e, replace).toBeInstanceOf(Error)
      expect(e.code, replace).toBe('42501')
      expect(e.message, replace).toMatch(/rule no-hr-reads/)
      expect(JSON.stringify(e), replace).not.toContain('SECRET-PERSON')
      await withClient(db.url, (d) => d.query('create or replace view public.shell_named as select id, name from public.teams'))
      await c.query(`create table if not exists public.unrelated_named (id int)`)
    }
  })
})

/**
 * The tunnel reads what is behind a relation on a catalog connection of its own, which sees only
 * committed changes. A change this session made (earlier in the same text, earlier in an open
 * transaction, or earlier in one pipeline) put hr.salaries behind a public name where that
 * connection could not see it, and the read of the public name ran with hr's rows.
 */
describe('what is behind a relation while the session changes the catalog', () => {
  const SECRET = 'PAYROLL-SECRET'
  let db: UpstreamInfo
  let deny: PipelineTunnel
  let allowList: PipelineTunnel
  const direct = <T>(fn: (c: pg.Client) => Promise<T>) => withClient(db.url, fn)
  const DDL_ALLOWED = ['  - id: ddl', '    match: {class: ddl}', '    action: allow']

  beforeAll(async () => {
    db = await payrollDatabase(
      SECRET,
      20,
      `
        create table public.parent (id int, person text, amount int);
        create table public.parted (id int, person text, amount int) partition by range (id);
        create table hr.salaries_part (id int, person text, amount int);
        insert into hr.salaries_part select * from hr.salaries;
        create view public.shell as select 1 as id, 'nobody'::text as person, 0 as amount;
        create table public.teams (id int, name text);
        insert into public.teams values (1, 'team 1');
      `,
    )
    deny = await openPipelineTunnel(db, ['rules:', '  - id: no-hr-reads', '    match: {class: read, tables: ["hr.*"]}', '    action: deny', ...DDL_ALLOWED].join('\n'))
    allowList = await openPipelineTunnel(
      db,
      ['rules:', '  - id: public-reads', '    match: {class: read, tables: ["public.*"]}', '    action: allow', '  - id: other-reads', '    match: {class: read}', '    action: deny', ...DDL_ALLOWED].join('\n'),
    )
  })
  afterAll(async () => {
    await deny?.close()
    await allowList?.close()
  })

  /** Changes that put hr.salaries behind a public name, each with the read that then returned hr rows. */
  const CHANGES: readonly [string, string][] = [
    ['alter table hr.salaries inherit public.parent', 'select * from public.parent'],
    ['alter table public.parted attach partition hr.salaries_part for values from (0) to (1000)', 'select person from parted'],
    ['create or replace view public.shell as select id, person, amount from hr.salaries', 'select * from shell'],
    ['create view public.fresh as select * from hr.salaries', 'table fresh'],
    ['create temp view teams as select id, person as name from hr.salaries', 'select * from teams'],
    ['create materialized view public.snapshot as select * from hr.salaries', 'select * from public.snapshot'],
  ]

  /** Runs `steps` on a fresh client; every one either ran or was refused. Returns what the client was shown and the refusals. */
  async function session(t: PipelineTunnel, steps: readonly string[]): Promise<{shown: string; refusals: Refusal[]}> {
    const c = await t.client()
    let shown = ''
    const refusals: Refusal[] = []
    try {
      for (const sql of steps) {
        try {
          const r = await c.query(sql)
          shown += JSON.stringify((Array.isArray(r) ? r : [r]).map((x: pg.QueryResult) => x.rows))
        } catch (e) {
          refusals.push(e as Refusal)
        }
      }
    } finally {
      await c.end()
    }
    return {shown, refusals}
  }

  it('refuses the read when the change comes earlier in the same text, and nothing of the text runs', async () => {
    for (const t of [deny, allowList]) {
      for (const [change, read] of CHANGES) {
        const {shown, refusals} = await session(t, [`${change}; ${read}`])
        expect(shown, change).not.toContain(SECRET)
        expect(refusals, change).toHaveLength(1)
        expect(refusals[0]!.code, `${change}: ${refusals[0]!.message}`).toBe('42501')
        // The allow-list's deny rule names no tables: it says which rule refused, the deny rule's detail says why.
        if (t === deny) expect(refusals[0]!.detail, change).toMatch(/changed the catalog in a transaction that is not committed yet \(or earlier in the same text\)/)
      }
    }
    // The refused texts never reached the server.
    expect(await direct(async (d) => (await d.query("select count(*)::int as n from pg_inherits where inhparent in ('public.parent'::regclass, 'public.parted'::regclass)")).rows[0].n)).toBe(0)
    expect(await direct(async (d) => (await d.query("select to_regclass('public.fresh') is null as gone")).rows[0].gone)).toBe(true)
  })

  it('refuses the read inside the transaction that made the change, until it commits', async () => {
    for (const t of [deny, allowList]) {
      // Not the replaced view: masking's catalog read waits on the lock the open transaction holds
      // on it (the view's own case is judged without masking, below).
      for (const [change, read] of CHANGES.filter(([c]) => !c.startsWith('create or replace'))) {
        const {shown, refusals} = await session(t, ['begin', change, read, 'rollback'])
        expect(shown, change).not.toContain(SECRET)
        expect(refusals.map((r) => r.code), change).toEqual(['42501'])
      }
    }
  })

  it('refuses the read later in the same pipeline, before its Sync commits the change', async () => {
    for (const t of [deny, allowList]) {
      for (const [change, read] of CHANGES.slice(0, 3)) {
        const raw = await t.raw()
        raw.send(serialize.parse({text: change}), serialize.bind({}), serialize.execute({}), serialize.parse({text: read}), serialize.bind({}), serialize.execute({}), serialize.sync())
        const msgs = await raw.untilReady()
        expect(msgs.map((m) => m.body.toString('latin1')).join(''), change).not.toContain(SECRET)
        expect(errorOf(msgs)?.code, `${change}: ${codes(msgs)}`).toBe('42501')
        raw.end()
      }
    }
    // The Sync after the refusal ended the pipeline's implicit transaction: nothing of it was committed.
    expect(await direct(async (d) => (await d.query("select count(*)::int as n from pg_inherits where inhparent = 'public.parent'::regclass")).rows[0].n)).toBe(0)
  })

  it('refuses the read sent after the reply to an earlier text of the same pipeline, while the change is still open', async () => {
    // The first reply reports no transaction open, but it answers the text before the change.
    const slow = 'select pg_sleep(0.2)'
    const run = (text: string) => [serialize.parse({text}), serialize.bind({}), serialize.execute({})]
    for (const t of [deny, allowList]) {
      for (const [change, read] of t === deny ? CHANGES : CHANGES.slice(0, 3)) {
        for (const form of ['simple', 'extended'] as const) {
          const raw = await t.raw()
          if (form === 'simple') raw.send(serialize.query(slow), serialize.query(`begin; ${change}; select pg_sleep(0.3)`))
          else raw.send(...run(slow), serialize.sync(), ...run('begin'), ...run(change), ...run('select pg_sleep(0.3)'))
          expect((await raw.untilReady()).at(-1)!.body.toString('latin1')).toBe('I')
          if (form === 'simple') raw.send(serialize.query(read), serialize.query('rollback'))
          else raw.send(...run(read), ...run('rollback'), serialize.sync())
          const msgs = []
          for (let i = form === 'simple' ? 3 : 1; i > 0; i--) msgs.push(...(await raw.untilReady()))
          raw.end()
          expect(msgs.map((m) => m.body.toString('latin1')).join(''), `${form}: ${change}`).not.toContain(SECRET)
          expect(errorOf(msgs)?.code, `${form}: ${change}: ${codes(msgs)}`).toBe('42501')
        }
      }
    }
  })

  it('refuses the read in a second session once the first commits the change by a Sync sent after the Execute was answered', async () => {
    // The Execute's answer comes before the Sync commits: what the second session looked up in
    // between is the catalog without the change, and must not be kept past the commit.
    const [change, read] = CHANGES[0]!
    const a = await deny.raw()
    const b = await deny.client()
    try {
      a.send(serialize.parse({text: change}), serialize.bind({}), serialize.execute({}), serialize.flush())
      for (let m = await a.next(); m.code !== 'C'; m = await a.next());
      // Uncommitted, the change is nobody else's yet, but its commit (the Sync) may come at any
      // moment: a read sent meanwhile waits for it and is judged after it.
      const meanwhile = b.query(read).then((r) => JSON.stringify(r.rows), (e: Refusal) => e)
      a.send(serialize.sync())
      await a.untilReady()
      const during = await meanwhile
      expect(during).not.toContain(SECRET)
      expect((during as Refusal).code).toBe('42501')
      const after = await b.query(read).then((r) => JSON.stringify(r.rows), (e: Refusal) => e)
      expect(after).not.toContain(SECRET)
      expect((after as Refusal).code).toBe('42501')
    } finally {
      a.end()
      await b.end()
      await direct((d) => d.query('alter table hr.salaries no inherit public.parent'))
    }
  })

  it("lets a migration read and write what it made or altered inside its own transaction, built-in calls included", async () => {
    // DDL that leaves every existing relation as it was: the committed catalog is still right about the others.
    const MIGRATIONS: readonly (readonly string[])[] = [
      [
        'create table public.m0 (id int primary key)',
        "create table public.m1 (id serial primary key, name text not null default 'unnamed', at timestamptz default now(), team int references public.m0 (id) on delete cascade, check (length(name) > 0))",
        'insert into public.m0 values (1)',
        "insert into public.m1 (name, team) values ('first', 1)",
        'select upper(m1.name) as name, t.name as team from public.m1 join public.teams t on t.id = m1.team',
      ],
      [
        "alter table public.teams add column note text default lower('X'), alter column name set not null, add constraint teams_name check (length(name) < 100)",
        'update public.teams set note = upper(name) where id = 1',
        'select note, name from teams',
      ],
      ['create index on public.teams (lower(name))', "select * from public.teams where lower(name) = 'team 1'"],
      ['create sequence public.mseq', "comment on table public.teams is 'teams'", 'select name from public.teams'],
    ]
    for (const steps of MIGRATIONS) {
      const {shown, refusals} = await session(deny, ['begin', ...steps, 'rollback'])
      expect(refusals.map((r) => `${r.code}: ${r.message}`), steps[0]).toEqual([])
      expect(shown, steps[0]).toContain('team 1')
    }
  })

  it('still counts every relation as every table after DDL that could put rows behind a name or run code unseen, even mixed with DDL that could not', async () => {
    const UNKEPT = [
      'alter table hr.salaries add column extra int, inherit public.parent',
      'create table public.kid (id int, person text, amount int) inherits (public.parent)',
      'create table public.kid (like hr.salaries)',
      'create index on public.teams (name text_pattern_ops)',
      'alter table public.teams add column p public.parent',
      'alter table public.teams enable row level security',
      'alter table public.teams set (fillfactor = 90)',
      'create table public.m9 (id int primary key); alter table public.teams add constraint f foreign key (id) references public.m9 (id) on delete cascade not valid',
    ]
    for (const t of [deny, allowList]) {
      for (const change of UNKEPT) {
        const {shown, refusals} = await session(t, ['begin', change, 'select * from public.parent', 'select name from public.teams', 'rollback'])
        expect(shown, change).not.toContain(SECRET)
        expect(refusals.map((r) => r.code), change).toEqual(['42501', '42501'])
        if (t === deny) expect(refusals[0]!.detail, change).toMatch(/changed the catalog in a transaction that is not committed yet/)
      }
    }
  })

  it('follows a view a superuser made in information_schema, an ordinary schema, as any other view', async () => {
    let i = 0
    for (const t of [deny, allowList]) {
      i++
      // Committed: the tables behind it are read from the catalog.
      const made = await session(t, [`create view information_schema.is_pay${i} as select * from hr.salaries`, `create view public.over_is${i} as select * from information_schema.is_pay${i}`])
      expect(made.refusals).toEqual([])
      const read = await session(t, [`select * from information_schema.is_pay${i}`, `table information_schema.is_pay${i}`, `select person from public.over_is${i}`])
      expect(read.shown).not.toContain(SECRET)
      expect(read.refusals.map((r) => r.code)).toEqual(['42501', '42501', '42501'])
      // Uncommitted: it counts as every table, as a view in public does.
      const open = await session(t, ['begin', `create view information_schema.is_fresh${i} as select * from hr.salaries`, `select * from information_schema.is_fresh${i}`, 'rollback'])
      expect(open.shown).not.toContain(SECRET)
      expect(open.refusals.map((r) => r.code)).toEqual(['42501'])
    }
    // information_schema's own views are still the system's.
    const own = await session(deny, ["select table_name from information_schema.tables where table_name = 'teams'"])
    expect(own.refusals).toEqual([])
    expect(own.shown).toContain('teams')
  })

  it('lets reads of public tables run again once no change is pending, and in transactions that change nothing', async () => {
    const {shown, refusals} = await session(deny, ['create table public.scratch (id int)', 'select * from public.teams', 'begin', 'select * from public.teams', 'commit', 'drop table public.scratch', 'select name from teams'])
    expect(refusals).toEqual([])
    expect(shown).toContain('team 1')
    const allowed = await session(allowList, ['begin', 'select * from public.teams', 'commit'])
    expect(allowed.refusals).toEqual([])
  })
})

/**
 * Relations whose rows are another table's: a TOAST table stores its owner's long values
 * (`pg_toast.pg_toast_<oid>`, pg_statistic's included), and a foreign table's rows come from
 * another server, which postgres_fdw can point at this very database's hr schema.
 */
describe('TOAST tables and foreign tables', () => {
  const SECRET = 'LONG-SECRET'
  let db: UpstreamInfo
  let deny: PipelineTunnel
  let allowList: PipelineTunnel
  const direct = <T>(fn: (c: pg.Client) => Promise<T>) => withClient(db.url, fn)
  let toast = ''
  let statisticsToast = ''

  beforeAll(async () => {
    db = await createTestDatabase()
    await direct(async (c) => {
      await c.query(`
        create schema hr;
        create table hr.docs (id int, body text);
        alter table hr.docs alter column body set storage external;
        insert into hr.docs values (1, repeat('${SECRET}', 1000));
        create table hr.salaries (id int, person text);
        insert into hr.salaries values (1, '${SECRET}');
        create extension postgres_fdw;
        create server loop foreign data wrapper postgres_fdw options (host '${db.host}', port '${db.port}', dbname '${db.database}');
        create user mapping for current_user server loop options (user '${db.user}', password '${db.password}');
        create foreign table public.remote_pay (id int, person text) server loop options (schema_name 'hr', table_name 'salaries');
        create view public.remote_view as select * from public.remote_pay;
        create table public.teams (id int, name text);
        insert into public.teams values (1, 'team 1');
        analyze;
      `)
      toast = (await c.query("select reltoastrelid::regclass::text as t from pg_class where oid = 'hr.docs'::regclass")).rows[0].t
      statisticsToast = (await c.query("select reltoastrelid::regclass::text as t from pg_class where oid = 'pg_catalog.pg_statistic'::regclass")).rows[0].t
    })
    deny = await openPipelineTunnel(db, ['rules:', '  - id: no-hr-reads', '    match: {class: read, tables: ["hr.*"]}', '    action: deny'].join('\n'))
    allowList = await openPipelineTunnel(db, ['rules:', '  - id: public-reads', '    match: {class: read, tables: ["public.*"]}', '    action: allow', '  - id: other-reads', '    match: {class: read}', '    action: deny'].join('\n'))
  })
  afterAll(async () => {
    await deny?.close()
    await allowList?.close()
  })

  it('counts a TOAST table as its owner, and a foreign table as every table, in every form', async () => {
    // The foreign table really serves hr's rows (straight to the server).
    expect(JSON.stringify(await direct(async (d) => (await d.query('select * from public.remote_pay')).rows))).toContain(SECRET)
    const routes: [string, RegExp][] = [
      [toast, new RegExp(`hr\\.docs, through the TOAST table ${toast.replace('.', '\\.')}`)],
      [statisticsToast, /pg_catalog\.pg_statistic shows values sampled from the columns of every analysed table/],
      ['remote_pay', /public\.remote_pay is a foreign table: its rows come from another server/],
      ['public.remote_view', /public\.remote_pay \(through the view public\.remote_view\) is a foreign table/],
    ]
    const d = await deny.client()
    const a = await allowList.client()
    for (const [rel, detail] of routes) {
      for (const sql of forms(rel)) {
        const e = await refused(d, sql)
        expect(e.message, sql).toMatch(/rule no-hr-reads/)
        expect(e.detail, sql).toMatch(detail)
        expect((await refused(a, sql)).message, sql).toMatch(/rule other-reads/)
      }
    }
    // The TOAST table's name alone (a search_path could reach it so) is judged the same.
    expect((await refused(d, `select * from ${toast.replace('pg_toast.', '')}`)).detail).toMatch(/through the TOAST table/)
    // Public tables still run.
    expect((await a.query('select name from teams')).rows).toEqual([{name: 'team 1'}])
  })
})

describe('what is behind a view, as the tunnel caches it and reads it again', () => {
  let db: UpstreamInfo
  let query: ClosableCatalogQuery

  beforeAll(async () => {
    await loadParser()
    db = await createTestDatabase()
    await withClient(db.url, (c) => c.query('create schema hr; create table hr.salaries (id int); create table teams (id int); create view roster as select id from teams'))
    query = catalogQueryFor({host: db.host, port: db.port, database: db.database, user: db.user, password: db.password, tls: 'disable'})
  })
  afterAll(() => query.close())

  it('sees a view replaced outside the tunnel once its entry is read again, and not before', async () => {
    let now = 0
    let sent = 0
    const counted = (sql: string) => {
      sent++
      return query(sql)
    }
    const catalog = new TargetFunctionCatalog({query: counted, now: () => now})
    const rules = [{id: 'no-hr', match: {class: 'read' as const, tables: ['hr.*']}, action: 'deny' as const}]
    const judge = async (sql: string) => {
      const statements = analyze(sql).statements
      await catalog.load(catalog.missing(catalogKeys(statements)))
      return judgeStatements(statements, undefined, {rules, pack: 'default'}, catalog).decision.action
    }
    expect(await judge('select * from roster')).toBe('allow')
    await withClient(db.url, (c) => c.query('create or replace view roster as select id from hr.salaries'))
    // Kept with the catalog entry: no lookup per statement.
    const before = sent
    expect(await judge('select * from roster')).toBe('allow')
    expect(sent).toBe(before)
    now += 60_001
    expect(await judge('select * from roster')).toBe('deny')
  })

  it('reads the catalog afresh when the session settles, although it looked the name up while the change was pending', async () => {
    await withClient(db.url, (c) => c.query('create or replace view roster as select id from teams'))
    const catalog = new TargetFunctionCatalog({query})
    const rules: PolicyRule[] = [
      {id: 'no-hr', match: {class: 'read', tables: ['hr.*']}, action: 'deny'},
      {id: 'ddl', match: {class: 'ddl'}, action: 'allow'},
    ]
    const hook = createStatementHook({rules, pack: 'default', identityGroups: [], functions: catalog, cache: new AnalysisCache()})
    // One SessionView per connection (the hook keeps its state by it), its ReadyForQuery count moving on.
    const view = {statement: () => undefined, portal: () => undefined, parameters: new Map<string, string>(), readyCount: 0}
    const at = (ready: number, transactionStatus: 'I' | 'T'): StatementContext => {
      view.readyCount = ready
      return {sessionId: 's', connectionId: 1, protocol: 'simple', transactionStatus, database: db.database, user: db.user, session: view, signal: new AbortController().signal, notify: () => {}}
    }
    const action = async (sql: string, c: StatementContext) => (await hook(sql, c)).action
    expect(await action('select * from roster', at(0, 'I'))).toBe('allow')
    // The session's change, made in a transaction the catalog's connection cannot see into yet.
    await withClient(db.url, async (d) => {
      await d.query('begin')
      await d.query('create or replace view roster as select id from hr.salaries')
      expect(await action('create or replace view roster as select id from hr.salaries', at(1, 'T'))).toBe('allow')
      // Refused while pending; what it looked up shows the view as it was.
      expect(await action('select * from roster', at(2, 'T'))).toBe('reject')
      await d.query('commit')
    })
    // Settled: the first statement after a ReadyForQuery with no transaction open reads the catalog again.
    const v = await hook('select * from roster', at(3, 'I'))
    expect(v.action).toBe('reject')
    expect(v.action === 'reject' ? v.error.detail : '').toContain('hr.salaries, through the view public.roster')
    expect(await action('select * from teams', at(4, 'I'))).toBe('allow')
  })
})

describe('dbgate policy check, without a connection', () => {
  it('says that rules on tables judged the names as written', async () => {
    const root = fileURLToPath(new URL('../..', import.meta.url))
    const dir = await mkdtemp(join(tmpdir(), 'dbgate-views-check-'))
    const lines: string[] = []
    const spy = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void lines.push(a.join(' ')))
    try {
      const config = join(dir, 'dbgate.yaml')
      await writeFile(
        config,
        ['targets:', '  prod:', '    host: db.internal', '    database: app', '    user: app_rw', '    rules:', '      - id: no-hr-reads', '        match: {class: read, tables: ["hr.*"]}', '        action: deny', ''].join('\n'),
      )
      await PolicyCheck.run(['prod', '--config', config, '--sql', 'select * from public.staff_directory; select most_common_vals from pg_stats'], root)
    } finally {
      spy.mockRestore()
      process.exitCode = undefined
      await rm(dir, {recursive: true, force: true})
    }
    const out = lines.join('\n')
    expect(out).toMatch(/^\[1\] ALLOW /m)
    expect(out).toMatch(/^\[2\] DENY +select \(read\) +rule no-hr-reads$/m)
    expect(out).toContain('detail: pg_catalog.pg_stats shows values sampled from the columns of every analysed table')
    expect(out).toContain('note: rules on tables judged public.staff_directory as written.')
    expect(out).toContain('cannot see which of them are views or materialized views')
  })
})
