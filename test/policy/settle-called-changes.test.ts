import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type pg from 'pg'
import {withClient, type UpstreamInfo} from '../helpers/pg.js'
import {payrollDatabase, uninheritPayroll} from '../helpers/payroll.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'

/**
 * A change to what is behind a relation made by a function the statement calls: `SELECT f()`,
 * where f is a volatile function whose body runs `ALTER TABLE hr.salaries INHERIT public.p`, or by
 * code a write runs without naming it (a trigger, a default, a check). The statement is a read or a
 * write, so the session was never counted as changing the catalog: a read of public.p later in the same text, in the same
 * transaction, after the commit in the same session (the relation's entry was kept), or in another
 * session after the commit, ran against what the catalog showed before the change, and returned
 * hr.salaries' rows past a rule on `hr.*`. Every way of reaching the call is tried, in every shape.
 */
type Refusal = Error & {code?: string; detail?: string}

describe('tables: rules after a change made by a called function or by code a write runs', () => {
  const SECRET = 'CALLED-PAYROLL-SECRET'
  let db: UpstreamInfo
  let t: PipelineTunnel
  const direct = <T>(fn: (c: pg.Client) => Promise<T>) => withClient(db.url, fn)
  let n = 0

  beforeAll(async () => {
    db = await payrollDatabase(SECRET)
    // DDL, writes (a volatile call counts as one) and DO blocks are allowed: only the rule on hr reads stands.
    t = await openPipelineTunnel(
      db,
      ['rules:', '  - id: no-hr-reads', '    match: {class: read, tables: ["hr.*"]}', '    action: deny', '  - id: ddl', '    match: {class: ddl}', '    action: allow', '  - id: writes', '    match: {class: write}', '    action: allow', '  - id: code', '    match: {class: opaque}', '    action: allow'].join('\n'),
    )
  }, 120_000)
  afterAll(async () => {
    await t?.close()
  })

  /**
   * A fresh, empty public.p_<i> (never looked up yet) and the statements that put hr.salaries
   * under it by calling a function, made outside the tunnel as a DBA would.
   */
  async function fresh(): Promise<{parent: string; changes: string[]}> {
    const i = ++n
    const parent = `public.p_${i}`
    const ddl = `alter table hr.salaries inherit ${parent}`
    await direct((d) =>
      d.query(`
        create table ${parent} (id int, person text, amount int);
        create function public.plpgsql_${i}() returns int language plpgsql as $$ begin ${ddl}; return 1; end $$;
        create function public.sql_${i}() returns int language sql as $$ ${ddl}; select 1 $$;
        create function public.dynamic_${i}() returns int language plpgsql as $$ begin execute '${ddl}'; return 1; end $$;
        create function public.nested_${i}() returns int language sql as $$ select public.plpgsql_${i}() $$;
        create view public.calls_${i} as select public.plpgsql_${i}() as x;
        create table public.log_${i} (id int);
        create function public.trg_${i}() returns trigger language plpgsql as $$ begin ${ddl}; return new; end $$;
        create trigger t before insert or update on public.log_${i} for each row execute function public.trg_${i}();
        insert into public.log_${i} select 0 where false;
        create view public.into_log_${i} as select * from public.log_${i};
        create table public.defaults_${i} (id int, x int default public.plpgsql_${i}());
        create function public.check_${i}(int) returns boolean language plpgsql as $$ begin ${ddl}; return true; end $$;
        create table public.checked_${i} (id int check (public.check_${i}(id)));
        create domain public.dom_${i} as int check (public.check_${i}(value));
        create table public.typed_${i} (id public.dom_${i});
        create table public.cascades_${i} (id int primary key);
        create table public.cascaded_${i} (id int references public.cascades_${i} on delete cascade);
        insert into public.cascades_${i} values (1);
        insert into public.cascaded_${i} values (1);
        create trigger t before delete on public.cascaded_${i} for each row execute function public.trg_${i}();
      `),
    )
    return {
      parent,
      changes: [
        `select public.plpgsql_${i}()`,
        `select public.sql_${i}()`,
        `select public.dynamic_${i}()`,
        `select public.nested_${i}()`,
        `select * from public.calls_${i}`,
        `explain analyze select public.plpgsql_${i}()`,
        `select x from (select public.plpgsql_${i}() as x) s where x > 0`,
        `with c as materialized (select public.plpgsql_${i}()) select * from c`,
        `prepare q_${i} as select public.plpgsql_${i}(); execute q_${i}`,
        // Code a write runs without naming it: a trigger, through a view too, a default, a check, a domain's check.
        `insert into public.log_${i} values (1)`,
        `insert into log_${i} values (1)`,
        `insert into public.into_log_${i} values (1)`,
        `insert into public.defaults_${i} (id) values (1)`,
        `insert into public.checked_${i} values (1)`,
        `insert into public.typed_${i} values (1)`,
        // And the trigger of a table a cascading foreign key writes.
        `delete from public.cascades_${i} where id = 1`,
      ],
    }
  }

  const undo = () => uninheritPayroll(db)

  async function run(c: pg.Client, sql: string): Promise<string | Refusal> {
    return c.query(sql).then(
      (r) => JSON.stringify((Array.isArray(r) ? r : [r]).map((x: pg.QueryResult) => x.rows)),
      (e: Refusal) => e,
    )
  }

  /** Runs one shape of the attack; returns what the reads answered (a refusal, or rows). */
  async function attack(shape: string, change: string, read: string): Promise<(string | Refusal)[]> {
    const a = await t.client()
    const b = await t.client()
    try {
      switch (shape) {
        case 'same text':
          return [await run(a, `${change}; ${read}`)]
        case 'transaction': {
          await a.query('begin')
          const refused = await run(a, change)
          if (typeof refused !== 'string') return [refused]
          const out = await run(a, read)
          await a.query('rollback')
          return [out]
        }
        case 'after the commit, same session': {
          // The read first, so the relation's entry is kept from before the change.
          expect(await run(a, read)).toBe('[[]]')
          const refused = await run(a, change)
          return typeof refused === 'string' ? [await run(a, read)] : [refused]
        }
        default: {
          expect(await run(b, read)).toBe('[[]]')
          const refused = await run(a, change)
          return typeof refused === 'string' ? [await run(b, read)] : [refused]
        }
      }
    } finally {
      await a.end()
      await b.end()
      await undo()
    }
  }

  it('refuses the read of the relation the call or the write changed, in every shape', async () => {
    const shapes = ['same text', 'transaction', 'after the commit, same session', 'after the commit, another session']
    const probe = await fresh()
    for (let k = 0; k < probe.changes.length; k++) {
      for (const shape of shapes) {
        const {parent, changes} = k === 0 && shape === shapes[0] ? probe : await fresh()
        const change = changes[k]!
        const answers = await attack(shape, change, `select * from ${parent}`)
        const what = `${shape}: ${change}`
        for (const a of answers) {
          expect(typeof a === 'string' ? a : a.message, what).not.toContain(SECRET)
          expect(typeof a === 'string' ? a : a.code, what).toBe('42501')
        }
      }
    }
    // Not vacuous: the call did run the change (here directly, as the tunnel ran it above).
    const {parent, changes} = await fresh()
    await direct(async (d) => {
      await d.query(changes[0]!)
      expect((await d.query(`select person from ${parent}`)).rows.map((r) => r.person as string).join()).toContain(SECRET)
    })
    await undo()
  }, 240_000)

  it('reads the catalog again for every session when COMMIT AND CHAIN commits a change without a DDL tag', async () => {
    // The chained transaction keeps the first session out of idle: its ReadyForQuery never reports the commit.
    const {parent, changes} = await fresh()
    const i = n
    const made = [`do $$ begin alter table hr.salaries inherit ${parent}; end $$`, changes[0]!, `insert into public.log_${i} values (1)`, `alter table hr.salaries inherit ${parent}`]
    for (const change of made) {
      for (const end of ['commit and chain', 'end and chain']) {
        const a = await t.client()
        const b = await t.client()
        try {
          expect(await run(b, `select * from ${parent}`)).toBe('[[]]')
          await a.query('begin')
          await a.query(change)
          await a.query(end)
          const after = await run(b, `select * from ${parent}`)
          expect(typeof after === 'string' ? after : after.message, `${change}; ${end}`).not.toContain(SECRET)
          expect(typeof after === 'string' ? after : after.code, `${change}; ${end}`).toBe('42501')
          await a.query('rollback')
        } finally {
          await a.end()
          await b.end()
          await undo()
        }
        // The undo ran outside the tunnel: DDL through it has the catalog read again for the next round.
        const c = await t.client()
        await c.query('drop table if exists public.tick; create table public.tick (id int)')
        await c.end()
      }
    }
  })

  it('refuses the read in another session while the first session\'s DO block or procedure has committed the change and goes on', async () => {
    // PostgreSQL commits at a COMMIT inside the block, long before the block's own reply.
    for (const form of ['do', 'call'] as const) {
      const {parent} = await fresh()
      const i = n
      const body = `alter table hr.salaries inherit ${parent}; commit; perform pg_sleep(1.5);`
      if (form === 'call') await direct((d) => d.query(`create procedure public.goes_on_${i}() language plpgsql as $p$ begin ${body} end $p$`))
      const a = await t.client()
      const b = await t.client()
      try {
        expect(await run(b, `select * from ${parent}`)).toBe('[[]]')
        const running = a.query(form === 'do' ? `do $$ begin ${body} end $$` : `call public.goes_on_${i}()`)
        // Until the change is committed, the read finds nothing; retry while the block goes on.
        const answers: (string | Refusal)[] = []
        for (let k = 0; k < 10; k++) {
          await new Promise((r) => setTimeout(r, 100))
          answers.push(await run(b, `select * from ${parent}`))
        }
        await running
        expect(await direct(async (d) => (await d.query(`select count(*)::int as n from ${parent}`)).rows[0].n), form).toBe(5)
        for (const x of answers) expect(typeof x === 'string' ? x : x.message, form).not.toContain(SECRET)
        // Once the first session is idle, reads that have nothing behind them run again.
        expect(await run(b, `select * from public.log_${i}`)).toBe('[[]]')
      } finally {
        await a.end()
        await b.end()
        await undo()
      }
    }
  })

  it("holds another session's call while the first session's DO block has committed a new body for it and goes on", async () => {
    const i = ++n
    const lockId = 70_000 + i
    await direct((d) => d.query(`create function public.peek_${i}() returns int language sql stable as $$ select 1 $$`))
    const body = `create or replace function public.peek_${i}() returns int language sql stable as $f$ select 1 from (select pg_advisory_lock(${lockId})) s $f$; commit; perform pg_sleep(1.5);`
    // DO blocks are allowed by name: a rule allowing every opaque operation would allow calls
    // judged unknown too.
    const rules = ['rules:', '  - id: no-locks', '    match: {functions: [pg_advisory_lock]}', '    action: deny', '  - id: ddl', '    match: {class: ddl}', '    action: allow', '  - id: writes', '    match: {class: write}', '    action: allow', '  - id: do', '    match: {command: do}', '    action: allow']
    const own = await openPipelineTunnel(db, rules.join('\n'))
    const a = await own.client()
    const b = await own.client()
    const locks = () => direct(async (d) => (await d.query(`select count(*)::int as n from pg_locks where locktype = 'advisory' and database = (select oid from pg_database where datname = current_database()) and objid = ${lockId}`)).rows[0].n as number)
    try {
      // Its committed body is a read: it runs (masking shows its value as of unknown origin).
      expect(typeof (await run(b, `select public.peek_${i}()`))).toBe('string')
      const running = a.query(`do $$ begin ${body} end $$`)
      const answers: (string | Refusal)[] = []
      for (let k = 0; k < 10; k++) {
        await new Promise((r) => setTimeout(r, 100))
        answers.push(await run(b, `select public.peek_${i}()`))
      }
      await running
      // Held (no reviewer here) while the block runs, whatever the committed catalog says.
      for (const x of answers) expect(typeof x === 'string' ? x : x.code).toBe('42501')
      expect(await locks()).toBe(0)
      // Committed and read again: the body that takes the lock is judged as it is.
      const after = await run(b, `select public.peek_${i}()`)
      expect(typeof after === 'string' ? after : after.code).toBe('42501')
      expect(await locks()).toBe(0)
    } finally {
      await a.end()
      await b.end()
      await own.close()
    }
  })

  it('lets reads run once the session made no change, after a call that only reads, and after a write to a table without code', async () => {
    const {parent} = await fresh()
    await direct((d) => d.query(`create function public.reads_only() returns int language sql stable as $$ select count(*)::int from ${parent} $$`))
    const c = await t.client()
    try {
      expect(await run(c, `select public.reads_only(); select * from ${parent}`)).toBe('[[{"reads_only":0}],[]]')
      await c.query('begin')
      expect(await run(c, 'select public.reads_only()')).toBe('[[{"reads_only":0}]]')
      expect(await run(c, `select * from ${parent}`)).toBe('[[]]')
      await c.query('commit')
      // A write to a table that runs no code of its own changes nothing behind a relation.
      await direct((d) => d.query('create table if not exists public.plain (id int default 1, at timestamptz default now())'))
      await c.query('begin')
      expect(await run(c, 'insert into public.plain (id) values (2)')).toBe('[[]]')
      expect(await run(c, `select * from ${parent}`)).toBe('[[]]')
      await c.query('commit')
    } finally {
      await c.end()
    }
  })
})
