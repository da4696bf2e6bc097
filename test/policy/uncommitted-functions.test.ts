import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type pg from 'pg'
import {serialize} from 'pg-protocol'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {codes, errorOf, type RawClient, type RawMessage} from '../helpers/raw-client.js'

/**
 * The tunnel judges a call by the function body, view, operator, cast or domain check its own
 * catalog connection sees, and that connection sees only committed state. A change the session
 * made earlier in the same text, earlier in its open transaction or earlier in one pipeline made a
 * call that looked like a read run something else: a replaced or renamed function, a new overload
 * of a built-in's name, a new operator or cast, a domain given a check, a schema renamed over
 * another. Under a policy that lets the session change the catalog, each of those ran (here: took
 * an advisory lock, moved a sequence). Now such calls need a reviewer until the change commits, and
 * after the COMMIT they are judged by what they run.
 */
type Refusal = Error & {code?: string; detail?: string; hint?: string}

interface Change {
  name: string
  /** What the database has before (committed). */
  setup: string
  /** The change: statements the policy below allows, none of which calls anything harmful as the committed catalog sees it. */
  ddl: string[]
  /** A call the committed catalog judges a read, which runs the harmful thing once `ddl` ran. */
  call: string
  /** The advisory lock key it would take, or the sequence it would move. */
  lock?: number
  sequence?: string
}

const lockBody = (key: number, arg = '$1') => `select ${arg} + 0 * length(pg_advisory_lock(${key})::text)`

const CHANGES: readonly Change[] = [
  {
    name: 'create or replace function',
    setup: `create function public.peek_r(int) returns int stable language sql as $$ select $1 $$`,
    ddl: [`create or replace function public.peek_r(int) returns int stable language sql as $$ ${lockBody(5101)} $$`],
    call: 'select peek_r(1)',
    lock: 5101,
  },
  {
    name: 'create or replace function (a sequence)',
    setup: `create sequence public.s_ddl; create function public.peek_n(int) returns int stable language sql as $$ select $1 $$`,
    ddl: [`create or replace function public.peek_n(int) returns int stable language sql as $$ select nextval('public.s_ddl')::int + $1 $$`],
    call: 'select peek_n(1)',
    sequence: 'public.s_ddl',
  },
  {
    name: 'alter function rename',
    setup: `create function public.later_f(int) returns int stable language sql as $$ select $1 $$;
            create function public.lockit_f(int) returns int stable language sql as $$ ${lockBody(5102)} $$`,
    ddl: ['alter function public.later_f(int) rename to gone_f', 'alter function public.lockit_f(int) rename to later_f'],
    call: 'select later_f(1)',
    lock: 5102,
  },
  {
    name: 'a new overload of a built-in name',
    setup: 'select 1',
    ddl: [`create function public.length(int) returns int stable language sql as $$ ${lockBody(5103)} $$`],
    call: 'select length(1)',
    lock: 5103,
  },
  {
    name: 'create operator',
    setup: 'select 1',
    ddl: [
      `create function public.text_plus(text, text) returns text stable language sql as $$ select $1 || $2 || length(pg_advisory_lock(5104)::text) $$`,
      'create operator public.+ (leftarg = text, rightarg = text, function = public.text_plus)',
    ],
    call: "select 'a'::text + 'b'::text",
    lock: 5104,
  },
  {
    name: 'create cast',
    setup: 'create type public.pair as (a int, b int)',
    ddl: [
      `create function public.to_pair(int) returns public.pair stable language sql as $$ select $1 + 0 * length(pg_advisory_lock(5105)::text), 1 $$`,
      'create cast (int as public.pair) with function public.to_pair(int)',
    ],
    call: 'select (1::public.pair).a',
    lock: 5105,
  },
  {
    name: 'create domain with a check',
    setup: `create function public.chk_c(int) returns bool stable language sql as $$ select true $$`,
    ddl: [
      `create or replace function public.chk_c(int) returns bool stable language sql as $$ select length(pg_advisory_lock(5106)::text) = 0 $$`,
      'create domain public.dfresh as int check (public.chk_c(value))',
    ],
    call: 'select 1::public.dfresh',
    lock: 5106,
  },
  {
    name: 'alter domain add check',
    setup: `create domain public.dadd as int; create function public.chk_a(int) returns bool stable language sql as $$ select true $$`,
    ddl: [
      `create or replace function public.chk_a(int) returns bool stable language sql as $$ select length(pg_advisory_lock(5107)::text) = 0 $$`,
      'alter domain public.dadd add constraint dadd_check check (public.chk_a(value))',
    ],
    call: 'select 1::public.dadd',
    lock: 5107,
  },
  {
    name: 'alter domain rename',
    setup: `create function public.lock_d(int) returns bool stable language sql as $$ select length(pg_advisory_lock(5108)::text) = 0 $$;
            create domain public.dlocked as int check (public.lock_d(value));
            create domain public.dplain as int`,
    ddl: ['alter domain public.dplain rename to dplain_old', 'alter domain public.dlocked rename to dplain'],
    call: 'select 1::public.dplain',
    lock: 5108,
  },
  {
    name: 'alter schema rename',
    setup: `create schema stage; create function stage.f(int) returns int stable language sql as $$ select $1 $$;
            create schema lab; create function lab.f(int) returns int stable language sql as $$ ${lockBody(5109)} $$`,
    ddl: ['alter schema stage rename to stage_old', 'alter schema lab rename to stage'],
    call: 'select stage.f(1)',
    lock: 5109,
  },
  {
    name: 'a view renamed over another',
    setup: `create function public.lock_v(int) returns int stable language sql as $$ ${lockBody(5110)} $$;
            create view public.v_lock as select public.lock_v(1) as x;
            create view public.v_plain as select 1 as x`,
    ddl: ['alter view public.v_plain rename to v_old', 'alter view public.v_lock rename to v_plain'],
    call: 'select * from v_plain',
    lock: 5110,
  },
  {
    name: 'create policy',
    setup: `create table public.guarded (id int); insert into public.guarded values (1);
            alter table public.guarded enable row level security; alter table public.guarded force row level security;
            create policy everyone on public.guarded using (true);
            create function public.chk_p(int) returns bool stable language sql as $$ select true $$`,
    ddl: [
      `create or replace function public.chk_p(int) returns bool stable language sql as $$ select length(pg_advisory_lock(5112)::text) = 0 $$`,
      'create policy locking on public.guarded as restrictive using (public.chk_p(id))',
    ],
    call: 'select id from public.guarded',
    lock: 5112,
  },
  {
    name: 'DO',
    setup: `create function public.peek_do(int) returns int stable language sql as $$ select $1 $$`,
    ddl: [`do $d$ begin execute 'create or replace function public.peek_do(int) returns int stable language sql as $b$ ${lockBody(5111)} $b$'; end $d$`],
    call: 'select peek_do(1)',
    lock: 5111,
  },
]

/** Session effects and sequence writes are denied when called; the catalog may be changed. */
const POLICY = [
  'rules:',
  '  - id: no-session-functions',
  '    match: {class: session, command: function}',
  '    action: deny',
  '    reason: advisory locks belong to the application',
  '  - id: no-function-writes',
  '    match: {class: write, command: function}',
  '    action: deny',
  '    reason: sequences are written by the application only',
  '  - id: ddl',
  '    match: {class: ddl}',
  '    action: allow',
  '  - id: new-code',
  '    match: {class: opaque, command: [create_function, do]}',
  '    action: allow',
  '  - id: policies',
  '    match: {class: privilege, command: create_policy}',
  '    action: allow',
].join('\n')

const UNSETTLED = /after a change to the catalog that this session has not committed yet/

describe('calls after a change to the catalog the session has not committed', () => {
  let db: UpstreamInfo
  let t: PipelineTunnel
  const direct = <T>(fn: (c: pg.Client) => Promise<T>) => withClient(db.url, fn)

  beforeAll(async () => {
    db = await createTestDatabase()
    for (const c of CHANGES) await direct((d) => d.query(c.setup))
    t = await openPipelineTunnel(db, POLICY)
  })
  afterAll(() => t?.close())

  /** Nothing the change's call would do happened: checked from another connection while the tunnel's session is still open. */
  async function nothingHappened(c: Change, how: string): Promise<void> {
    await direct(async (d) => {
      if (c.lock !== undefined) expect((await d.query(`select count(*)::int n from pg_locks where locktype = 'advisory' and database = (select oid from pg_database where datname = current_database()) and objid = $1`, [c.lock])).rows[0].n, how).toBe(0)
      if (c.sequence) expect((await d.query(`select is_called from ${c.sequence}`)).rows[0].is_called, how).toBe(false)
    })
  }

  /** The catalog as it was: none of the changes committed. */
  async function unchanged(): Promise<void> {
    const made = await direct(async (d) => (await d.query(`select count(*)::int n from pg_proc where proname in ('length', 'text_plus', 'to_pair', 'gone_f') and pronamespace = 'public'::regnamespace`)).rows[0].n)
    expect(made).toBe(0)
    expect(await direct(async (d) => (await d.query(`select to_regnamespace('lab') is not null as lab`)).rows[0].lab)).toBe(true)
  }

  const queryRefusal = async (c: pg.Client, sql: string): Promise<Refusal | undefined> => (await c.query(sql).then(() => undefined, (e: Refusal) => e))

  it('holds the call when the change comes earlier in the same text, and none of the text runs', async () => {
    for (const change of CHANGES) {
      const c = await t.client()
      const e = await queryRefusal(c, [...change.ddl, change.call].join(';\n'))
      expect(e, change.name).toBeDefined()
      expect(e!.code, `${change.name}: ${e!.message}`).toBe('42501')
      await nothingHappened(change, change.name)
      await c.end()
    }
    await unchanged()
  })

  it('refuses the call later in the same extended-protocol pipeline, before its Sync commits the change', async () => {
    for (const change of CHANGES) {
      const raw = await t.raw()
      const steps = [...change.ddl, change.call].flatMap((text) => [serialize.parse({text}), serialize.bind({}), serialize.execute({})])
      raw.send(...steps, serialize.sync())
      const msgs = await raw.untilReady()
      expect(errorOf(msgs)?.code, `${change.name}: ${codes(msgs)} ${errorOf(msgs)?.message}`).toBe('42501')
      await nothingHappened(change, change.name)
      raw.end()
    }
  })

  it('holds the call inside the transaction that made the change, says to send it after the COMMIT, and after it judges the call by what it runs', async () => {
    // Not the renamed view: masking's catalog read waits on the lock the open transaction holds on it
    // (its same-text and pipeline cases are above).
    for (const change of CHANGES.filter((c) => !c.name.includes('view'))) {
      const c = await t.client()
      await c.query('begin')
      const ran: string[] = []
      let refusal: Refusal | undefined
      for (const sql of [...change.ddl, change.call]) {
        const e = await queryRefusal(c, sql)
        if (e) {
          refusal = e
          break
        }
        ran.push(sql)
      }
      expect(refusal, change.name).toBeDefined()
      expect(refusal!.code, `${change.name}: ${refusal!.message}`).toBe('42501')
      // The statements of the change ran up to the first that calls something (here the call itself,
      // or a domain check calling the function replaced before it).
      expect(change.ddl.slice(0, ran.length), change.name).toEqual(ran)
      expect(refusal!.message, change.name).toMatch(UNSETTLED)
      expect(refusal!.detail, change.name).toMatch(/send it after the COMMIT/)
      await nothingHappened(change, change.name)
      await c.query('rollback')

      // Committed (as a migration would be), the call is judged by what it runs now.
      await direct((d) => d.query(change.ddl.join(';\n')))
      // DDL through the tunnel has the catalog read again (as its time to live would).
      await c.query('create table if not exists public.bump (id int)')
      const after = await queryRefusal(c, change.call)
      expect(after, change.name).toBeDefined()
      expect(`${after!.message} ${after!.detail ?? ''}`, change.name).toMatch(/rule (no-session-functions|no-function-writes|default\.unknown-function)/)
      await nothingHappened(change, change.name)
      await c.end()
    }
  })
})

/** Runs the messages and returns what came back up to the next ReadyForQuery. */
async function run(raw: RawClient, ...msgs: Buffer[]): Promise<RawMessage[]> {
  raw.send(...msgs)
  return raw.untilReady()
}

describe('prepared statements, portals and cursors judged before the change', () => {
  let db: UpstreamInfo
  let t: PipelineTunnel
  const direct = <T>(fn: (c: pg.Client) => Promise<T>) => withClient(db.url, fn)
  const replace = (name: string, key: number) => `create or replace function public.${name}(int) returns int stable language sql as $$ ${lockBody(key)} $$`
  const locked = async (key: number) => direct(async (d) => (await d.query(`select count(*)::int n from pg_locks where locktype = 'advisory' and database = (select oid from pg_database where datname = current_database()) and objid = $1`, [key])).rows[0].n as number)

  beforeAll(async () => {
    db = await createTestDatabase()
    await direct((d) =>
      d.query(
        [
          ...['p_named', 'p_pipe', 'p_portal', 'p_cursor', 'p_exec', 'p_syncs', 'p_after'].map((n) => `create function public.${n}(int) returns int stable language sql as $$ select $1 $$;`),
          // PL/pgSQL: a SQL function this simple is inlined into the cursor's plan at DECLARE.
          'create function public.p_hold(int) returns int stable language plpgsql as $$ begin return $1; end $$;',
        ].join('\n'),
      ),
    )
    t = await openPipelineTunnel(db, POLICY)
  })
  afterAll(() => t?.close())

  it('judges a named statement again at Bind after the change, in the open transaction', async () => {
    const c = await t.client()
    const named = {name: 'named-peek', text: 'select p_named($1::int) as v', values: [1]}
    // (A user function's result is masked: untraceable. What matters is that it ran.)
    expect((await c.query(named)).rows).toHaveLength(1)
    await c.query('begin')
    await c.query(replace('p_named', 5201))
    // node-postgres sends only Bind and Execute for a name it has parsed.
    const e = (await c.query(named).catch((x: Error) => x)) as Refusal
    expect(e).toBeInstanceOf(Error)
    expect(e.code).toBe('42501')
    expect(e.message).toMatch(UNSETTLED)
    expect(await locked(5201)).toBe(0)
    await c.query('rollback')
    await c.end()
  })

  it('judges a named statement again at Bind when the change is earlier in the same pipeline', async () => {
    const raw = await t.raw()
    expect(codes(await run(raw, serialize.parse({name: 'sp', text: 'select p_pipe(1)'}), serialize.sync()))).toBe('1Z')
    // Bound once as it is (the catalog read for its Parse is behind it): a read.
    expect(errorOf(await run(raw, serialize.bind({statement: 'sp'}), serialize.execute({}), serialize.sync()))).toBeUndefined()
    const msgs = await run(raw, serialize.parse({text: replace('p_pipe', 5202)}), serialize.bind({}), serialize.execute({}), serialize.bind({statement: 'sp'}), serialize.execute({}), serialize.sync())
    expect(errorOf(msgs)?.code, codes(msgs)).toBe('42501')
    expect(await locked(5202)).toBe(0)
    // The change was rolled back with the pipeline: the statement is a read again.
    const again = await run(raw, serialize.bind({statement: 'sp'}), serialize.execute({}), serialize.sync())
    expect(errorOf(again), codes(again)).toBeUndefined()
    raw.end()
  })

  it('judges a portal bound before the change again when it is executed after it', async () => {
    const raw = await t.raw()
    await run(raw, serialize.query('begin'))
    expect(codes(await run(raw, serialize.parse({name: 'sq', text: 'select p_portal(1)'}), serialize.bind({statement: 'sq', portal: 'held'}), serialize.sync()))).toBe('12Z')
    expect(errorOf(await run(raw, serialize.query(replace('p_portal', 5203))))).toBeUndefined()
    const msgs = await run(raw, serialize.execute({portal: 'held'}), serialize.sync())
    expect(errorOf(msgs)?.code, codes(msgs)).toBe('42501')
    expect(await locked(5203)).toBe(0)
    raw.end()
  })

  it('holds a FETCH or protocol Execute of a cursor declared before the change', async () => {
    const c = await t.client()
    await c.query('begin')
    await c.query('declare cur cursor for select p_cursor(g) from generate_series(1, 3) g')
    await c.query(replace('p_cursor', 5204))
    for (const sql of ['fetch 1 from cur', 'move 1 in cur']) {
      await c.query('savepoint s')
      const e = (await c.query(sql).catch((x: Error) => x)) as Refusal
      expect(e, sql).toBeInstanceOf(Error)
      expect(e.code, sql).toBe('42501')
      await c.query('rollback to savepoint s')
    }
    expect(await locked(5204)).toBe(0)
    await c.query('rollback')
    await c.end()

    const raw = await t.raw()
    await run(raw, serialize.query("begin; declare cur2 cursor for select p_cursor(g) from generate_series(1, 3) g"))
    expect(errorOf(await run(raw, serialize.query(replace('p_cursor', 5205))))).toBeUndefined()
    const msgs = await run(raw, serialize.execute({portal: 'cur2'}), serialize.sync())
    expect(errorOf(msgs)?.code, codes(msgs)).toBe('42501')
    expect(await locked(5205)).toBe(0)
    raw.end()
  })

  it("holds a call of a function that fetches from or moves the client's cursor: it would run the cursor's query with what changed since it was judged", async () => {
    await direct((d) =>
      d.query(`
        create function public.p_fetched(int) returns int stable language plpgsql as $$ begin return $1; end $$;
        create function public.fetch_all(c refcursor) returns int stable language plpgsql as $$ declare v int; n int := 0; begin loop fetch c into v; exit when not found; n := n + 1; end loop; return n; end $$;
        create function public.move_all(c refcursor) returns int stable language plpgsql as $$ begin move forward all in c; return 1; end $$;
        create function public.fetch_named() returns int stable language plpgsql as $$ declare c refcursor := 'cur4'; v int; begin fetch c into v; return v; end $$;
      `),
    )
    const b = await t.client()
    const a = await t.client()
    try {
      await b.query('begin')
      await b.query('declare cur4 cursor for select p_fetched(g) from generate_series(1, 3) g')
      // Another session replaces what the cursor calls, and commits.
      await a.query(`create or replace function public.p_fetched(int) returns int stable language plpgsql as $$ begin perform pg_advisory_lock(5210); return $1; end $$`)
      for (const sql of ["select fetch_all('cur4')", "select move_all('cur4')", 'select fetch_named()']) {
        await b.query('savepoint s')
        const e = (await b.query(sql).catch((x: Error) => x)) as Refusal
        expect(e, sql).toBeInstanceOf(Error)
        expect(e.code, sql).toBe('42501')
        expect(e.message + (e.detail ?? ''), sql).toMatch(/(fetches from|moves) a cursor at line \d+ that may be one the client opened/)
        await b.query('rollback to savepoint s')
      }
      expect(await locked(5210)).toBe(0)
      await b.query('rollback')
    } finally {
      await a.end()
      await b.end()
    }
  })

  it('holds a change to what a cursor WITH HOLD declared earlier in the transaction calls: the COMMIT would run its query', async () => {
    const replacePl = (key: number) => `create or replace function public.p_hold(int) returns int stable language plpgsql as $$ begin perform pg_advisory_lock(${key}); return $1; end $$`
    const declare = 'declare hc cursor with hold for select p_hold(g) from generate_series(1, 2) g'
    const c = await t.client()
    await c.query('begin')
    await c.query(declare)
    const e = (await c.query(replacePl(5209)).catch((x: Error) => x)) as Refusal
    expect(e.code).toBe('42501')
    expect(e.detail).toMatch(/declared WITH HOLD earlier in this transaction/)
    await c.query('rollback')
    // In one text, whose implicit transaction commits at its end.
    const same = (await c.query(`${declare}; ${replacePl(5210)}`).catch((x: Error) => x)) as Refusal
    expect(same.code).toBe('42501')
    // In a transaction of its own (the cursor's query ran at the COMMIT before), the change is the policy's to allow.
    await c.query('begin')
    await c.query(declare)
    await c.query('commit')
    await c.query('begin')
    await c.query(replacePl(5211))
    await c.query('rollback')
    await c.query('close hc')
    expect(await locked(5209)).toBe(0)
    expect(await locked(5210)).toBe(0)
    await c.end()
  })

  it('holds an EXECUTE of a statement prepared before the change', async () => {
    const c = await t.client()
    await c.query('prepare px as select p_exec(1)')
    await c.query('begin')
    await c.query(replace('p_exec', 5206))
    const e = (await c.query('execute px').catch((x: Error) => x)) as Refusal
    expect(e.code).toBe('42501')
    expect(await locked(5206)).toBe(0)
    await c.query('rollback')
    await c.end()
  })

  it('holds the call in a later Sync of the same transaction, and judges it by the new body after the COMMIT', async () => {
    const raw = await t.raw()
    const step = (text: string) => [serialize.parse({text}), serialize.bind({}), serialize.execute({}), serialize.sync()]
    raw.send(...step('begin'), ...step(replace('p_syncs', 5207)), ...step('select p_syncs(1)'))
    for (let i = 0; i < 2; i++) expect(errorOf(await raw.untilReady())).toBeUndefined()
    const held = await raw.untilReady()
    expect(errorOf(held)?.code, codes(held)).toBe('42501')
    expect(errorOf(held)?.message).toMatch(UNSETTLED)
    expect(await locked(5207)).toBe(0)
    await run(raw, serialize.query('rollback'))
    raw.end()

    // The same change committed through the tunnel: the next call is judged by the body now visible.
    const c = await t.client()
    await c.query('begin')
    await c.query(replace('p_after', 5208))
    await c.query('commit')
    const e = (await c.query('select p_after(1)').catch((x: Error) => x)) as Refusal
    expect(e.code).toBe('42501')
    expect(`${e.message} ${e.detail}`).toMatch(/rule no-session-functions.*public\.p_after calls pg_catalog\.pg_advisory_lock inside its body/s)
    expect(await locked(5208)).toBe(0)
    // And a body that only reads is a read again.
    await c.query('begin')
    await c.query('create or replace function public.p_after(int) returns int stable language sql as $$ select $1 * 2 $$')
    await c.query('commit')
    expect((await c.query('select p_after(21) as v')).rows).toHaveLength(1)
    // Built-in reads in a transaction that changes nothing are not held.
    await c.query('begin')
    expect((await c.query('select length(\'abc\') as n, now() is not null as t')).rows).toEqual([{n: 3, t: true}])
    await c.query('commit')
    // Nor what a migration or pgbench does after a change that adds or empties storage only: a new
    // table, an index, TRUNCATE (a cast after a new table is held: the table's row type is new).
    await c.query('begin')
    await c.query('create table public.fresh_rows (id int, at timestamptz default now())')
    await c.query('create index on public.fresh_rows (id)')
    await c.query('insert into public.fresh_rows (id) select g from generate_series(1, 3) g')
    await c.query('truncate public.fresh_rows')
    await c.query("insert into public.fresh_rows values (length('abcd'), now()), (5::int, null)")
    // (Masking does not know the new table yet, so only the count is shown as it is.)
    expect((await c.query('select count(*)::int as n from public.fresh_rows where at <= now() and id = 4')).rows).toEqual([{n: 1}])
    // A cast to a type named as a table could be might be to the new table's row type.
    await c.query('savepoint s')
    expect(((await c.query("select 'now'::date").catch((x: Error) => x)) as Refusal).message).toMatch(UNSETTLED)
    await c.query('rollback to savepoint s')
    await c.query('commit')
    await c.end()
  })
})

/**
 * A change to the catalog the statement does not show: a superuser's function body, or a rule on
 * the table a statement writes, that rewrites pg_proc (or any system catalog). The statement looked
 * like a write, so the calls after it (in the same text, or the open transaction) were judged by
 * the bodies the catalog connection still saw, and ran the new one (here: took an advisory lock).
 * A body that writes a system catalog is now denied; a rule that does makes the write count as a
 * change to the catalog (the catalogs are pinned: pg_depend records no dependency on them, so the
 * rule's own tree says what it touches).
 */
describe('a change to the catalog hidden in a function body or a rule', () => {
  let db: UpstreamInfo
  let t: PipelineTunnel
  const direct = <T>(fn: (c: pg.Client) => Promise<T>) => withClient(db.url, fn)
  const locked = async (key: number) => direct(async (d) => (await d.query(`select count(*)::int n from pg_locks where locktype = 'advisory' and database = (select oid from pg_database where datname = current_database()) and objid = $1`, [key])).rows[0].n as number)
  const prosrc = async (name: string) => direct(async (d) => (await d.query(`select prosrc from pg_proc where proname = $1`, [name])).rows[0].prosrc as string)
  /** The new body of `target`, as a catalog write sets it: a literal inside the writing statement. */
  const rewrite = (target: string, key: number) => `update pg_proc set prosrc = 'select $1 + 0 * length(pg_advisory_lock(${key})::text)' where proname = '${target}'`

  /** Writes (a volatile function's included) are allowed here, as they are for many teams. */
  const WRITES = [
    'rules:',
    '  - id: no-session-functions',
    '    match: {class: session, command: function}',
    '    action: deny',
    '  - id: writes',
    '    match: {class: write}',
    '    action: allow',
    '  - id: ddl',
    '    match: {class: ddl}',
    '    action: allow',
  ].join('\n')

  interface Hidden {
    name: string
    /** Run directly: the function or rule that rewrites `target`, and `target` itself (a read). */
    setup: (target: string, key: number) => string
    /** The statement that runs it, let through by WRITES as the committed catalog sees it. */
    trigger: string | ((target: string, key: number) => string)
  }
  const HIDDEN: Hidden[] = [
    {name: 'SQL function body', setup: (g, k) => `create function public.w_sql() returns int volatile language sql as $$ ${rewrite(g, k)}; select 1 $$`, trigger: 'select public.w_sql()'},
    {name: 'qualified catalog in a stable body', setup: (g, k) => `create function public.w_q() returns int language sql as $$ ${rewrite(g, k).replace('pg_proc', 'pg_catalog.pg_proc')} returning 1 $$`, trigger: 'select public.w_q()'},
    {name: 'PL/pgSQL body', setup: (g, k) => `create function public.w_pl() returns int volatile language plpgsql as $$ begin ${rewrite(g, k)}; return 1; end $$`, trigger: 'select public.w_pl()'},
    {
      name: 'a body that calls one that writes',
      setup: (g, k) =>
        `create function public.w_inner() returns int volatile language sql as $$ ${rewrite(g, k)}; select 1 $$;
         create function public.w_outer() returns int volatile language sql as $$ select public.w_inner() $$`,
      trigger: 'select public.w_outer()',
    },
    {
      name: 'a body that writes through a view over pg_proc',
      setup: (g, k) => `create view public.procs_b as select * from pg_proc; create function public.w_view() returns int volatile language sql as $$ ${rewrite(g, k).replace('pg_proc', 'public.procs_b')}; select 1 $$`,
      trigger: 'select public.w_view()',
    },
    {name: 'a write through a view over pg_proc', setup: () => 'create view public.procs_c as select * from pg_proc', trigger: (g, k) => rewrite(g, k).replace('pg_proc', 'public.procs_c')},
    {name: 'a CTE in a body', setup: (g, k) => `create function public.w_cte() returns int volatile language sql as $$ with u as (${rewrite(g, k)} returning 1) select count(*)::int from u $$`, trigger: 'select public.w_cte()'},
    {name: 'rule ON INSERT … DO ALSO', setup: (g, k) => `create table public.r_also (id int); create rule r_also as on insert to public.r_also do also ${rewrite(g, k)}`, trigger: 'insert into public.r_also values (1)'},
    {name: 'rule ON UPDATE … DO INSTEAD', setup: (g, k) => `create table public.r_inst (id int); insert into public.r_inst values (1); create rule r_inst as on update to public.r_inst do instead ${rewrite(g, k)}`, trigger: 'update public.r_inst set id = 2 where id = 1'},
    {
      name: 'an INSTEAD rule on a view',
      setup: (g, k) => `create table public.r_base (id int); create view public.r_view as select id from public.r_base; create rule r_view as on insert to public.r_view do instead ${rewrite(g, k)}`,
      trigger: 'insert into public.r_view values (1)',
    },
    {
      name: 'rule ON DELETE through a catalog qualified by name',
      setup: (g, k) => `create table public.r_del (id int); insert into public.r_del values (1); create rule r_del as on delete to public.r_del do also ${rewrite(g, k).replace('pg_proc', 'pg_catalog.pg_proc')}`,
      trigger: 'delete from public.r_del where id = 1',
    },
  ]
  const target = (i: number) => `hid_${i}`
  const key = (i: number) => 5300 + i

  beforeAll(async () => {
    db = await createTestDatabase()
    for (const [i, h] of HIDDEN.entries()) await direct((d) => d.query(`create function public.${target(i)}(int) returns int stable language sql as $$ select $1 $$; ${h.setup(target(i), key(i))}`))
    t = await openPipelineTunnel(db, WRITES)
  })
  afterAll(() => t?.close())

  it('never runs a body the tunnel did not judge: same text, open transaction, pipeline', async () => {
    for (const [i, h] of HIDDEN.entries()) {
      const call = `select ${target(i)}(1)`
      const trigger = typeof h.trigger === 'string' ? h.trigger : h.trigger(target(i), key(i))
      const before = await prosrc(target(i))
      const c = await t.client()
      const sameText = await c.query(`${trigger}; ${call}`).then(() => undefined, (e: Refusal) => e)
      expect(sameText, `${h.name}: same text`).toBeDefined()
      expect(sameText!.code, `${h.name}: ${sameText!.message}`).toBe('42501')

      // In an open transaction: the write is let through (a rule) or refused (a body); the call after it never runs the new body.
      await c.query('begin')
      const wrote = await c.query(trigger).then(() => true, () => false)
      const inTx = await c.query(call).then(() => undefined, (e: Refusal) => e)
      expect(inTx, `${h.name}: open transaction (the write ${wrote ? 'ran' : 'was refused'})`).toBeDefined()
      await c.query('rollback').catch(() => {})
      expect(await locked(key(i)), h.name).toBe(0)
      await c.end()

      const raw = await t.raw()
      const steps = [trigger, call].flatMap((text) => [serialize.parse({text}), serialize.bind({}), serialize.execute({})])
      raw.send(...steps, serialize.sync())
      const msgs = await raw.untilReady()
      expect(errorOf(msgs)?.code, `${h.name}: pipeline ${codes(msgs)}`).toBe('42501')
      raw.end()
      expect(await locked(key(i)), h.name).toBe(0)
      expect(await prosrc(target(i)), h.name).toBe(before)
    }
  })

  it('says why a body that writes a system catalog is refused', async () => {
    const c = await t.client()
    const e = (await c.query('select public.w_sql()').catch((x: Error) => x)) as Refusal
    expect(e.code).toBe('42501')
    expect(`${e.message} ${e.detail ?? ''}`).toMatch(/writes the system catalog pg_proc inside its body/)
    await c.end()
  })

  it('still runs the calls once a rule that writes a catalog has committed its change, judged by the new body', async () => {
    const i = HIDDEN.findIndex((h) => h.name.startsWith('rule ON INSERT'))
    const c = await t.client()
    await c.query(HIDDEN[i]!.trigger as string)
    // The rule's write committed: the call is judged by the body it now runs (an advisory lock, denied).
    const e = (await c.query(`select ${target(i)}(1)`).catch((x: Error) => x)) as Refusal
    expect(`${e.message}`).toMatch(/no-session-functions/)
    expect(await locked(key(i))).toBe(0)
    // And plain reads of a settled session are unaffected.
    expect((await c.query('select length(\'abc\') n')).rows[0].n).toBe(3)
    await c.end()
  })
})

/**
 * CREATE TABLE changes only casts, the fix said: its new row type is what a cast to its name may
 * now mean. But a user function's body names types when it runs (PL/pgSQL, or SQL without BEGIN
 * ATOMIC), so `($1::rowish)::text` in a committed body, judged a read while no type of that name
 * existed, became a conversion into a new (temporary) table's row type, running its columns'
 * domain checks (here one that takes an advisory lock). After CREATE TABLE, calls that may reach a
 * user's function are held as well; built-ins are not.
 */
describe("a new table's row type named inside a body", () => {
  let db: UpstreamInfo
  let t: PipelineTunnel
  const direct = <T>(fn: (c: pg.Client) => Promise<T>) => withClient(db.url, fn)
  const locked = async () => direct(async (d) => (await d.query(`select count(*)::int n from pg_locks where locktype = 'advisory' and database = (select oid from pg_database where datname = current_database()) and objid = 5501`)).rows[0].n as number)

  interface Route {
    name: string
    /** Committed beforehand: something that converts text into the type `ty` when called. */
    setup: (ty: string) => string
    call: string
  }
  const ROUTES: Route[] = [
    {name: 'PL/pgSQL body', setup: (ty) => `create function public.rt_pl(text) returns text stable language plpgsql as $$ begin return ($1::${ty})::text; end $$`, call: "select rt_pl('(1)')"},
    {
      name: 'SQL body',
      setup: (ty) => `set check_function_bodies = off; create function public.rt_sql(text) returns text stable language sql as $$ select ($1::${ty})::text $$; reset check_function_bodies`,
      call: "select rt_sql('(1)')",
    },
    {
      name: 'nested body',
      setup: (ty) => `create function public.rt_inner(text) returns text stable language plpgsql as $$ begin return ($1::${ty})::text; end $$; create function public.rt_outer(text) returns text stable language sql as $$ select public.rt_inner($1) $$`,
      call: "select rt_outer('(1)')",
    },
    {
      name: 'operator',
      setup: (ty) => `create function public.rt_op(text, text) returns text stable language plpgsql as $$ begin return ($1::${ty})::text || $2; end $$; create operator public.&%& (leftarg = text, rightarg = text, function = public.rt_op)`,
      call: "select '(1)'::text &%& 'x'::text",
    },
    {
      name: 'view',
      setup: (ty) => `create function public.rt_v(text) returns text stable language plpgsql as $$ begin return ($1::${ty})::text; end $$; create view public.rt_view as select public.rt_v('(1)') as v`,
      call: 'select * from public.rt_view',
    },
    {
      name: 'aggregate',
      setup: (ty) => `create function public.rt_acc(text, text) returns text stable language plpgsql as $$ begin return ($2::${ty})::text; end $$; create aggregate public.rt_agg(text) (sfunc = public.rt_acc, stype = text)`,
      call: "select rt_agg(x) from (values ('(1)'::text)) v(x)",
    },
  ]
  const ty = (i: number) => `rowish_${i}`
  const table = (i: number, temp: boolean) => `create ${temp ? 'temp ' : ''}table ${temp ? '' : 'public.'}${ty(i)} (x public.locking_int)`

  beforeAll(async () => {
    db = await createTestDatabase()
    await direct((d) =>
      d.query(`
        create function public.take_lock(int) returns bool volatile language sql as $$ select pg_advisory_lock(5501) is not null $$;
        create domain public.locking_int as int check (public.take_lock(value));
        ${ROUTES.map((r, i) => r.setup(ty(i))).join(';\n')};
      `),
    )
    t = await openPipelineTunnel(db, POLICY)
  })
  afterAll(() => t?.close())

  it('holds the call after CREATE TABLE (same text, open transaction, pipeline), which is a read without it', async () => {
    for (const [i, r] of ROUTES.entries()) {
      const c = await t.client()
      // While no such type exists the call is a read: let through, and failed by the server.
      const before = (await c.query(r.call).catch((x: Error) => x)) as Refusal
      expect(before.code, `${r.name}: before: ${before.message}`).toBe('42704')
      const sameText = (await c.query(`${table(i, true)}; ${r.call}`).catch((x: Error) => x)) as Refusal
      expect(sameText.code, `${r.name}: same text: ${sameText.message}`).toBe('42501')
      expect(sameText.message, r.name).toMatch(UNSETTLED)
      expect(await locked(), r.name).toBe(0)

      await c.query('begin')
      await c.query(table(i, false))
      const inTx = (await c.query(r.call).catch((x: Error) => x)) as Refusal
      expect(inTx.code, `${r.name}: open transaction: ${inTx.message}`).toBe('42501')
      await c.query('rollback')
      expect(await locked(), r.name).toBe(0)

      const raw = await t.raw()
      raw.send(...[table(i, true), r.call].flatMap((text) => [serialize.parse({text}), serialize.bind({}), serialize.execute({})]), serialize.sync())
      const msgs = await raw.untilReady()
      expect(errorOf(msgs)?.code, `${r.name}: pipeline ${codes(msgs)}`).toBe('42501')
      raw.end()
      expect(await locked(), r.name).toBe(0)
      await c.end()
    }
  })

  it("holds a FETCH of a cursor declared before CREATE TABLE, and CREATE TABLE under a WITH HOLD cursor (the COMMIT runs its query)", async () => {
    const i = ROUTES.findIndex((r) => r.name === 'PL/pgSQL body')
    const c = await t.client()
    await c.query('begin')
    await c.query(`declare cur cursor for select rt_pl('(1)') from generate_series(1, 3)`)
    await c.query(table(i, true))
    for (const sql of ['fetch 1 from cur', 'move 1 in cur']) {
      await c.query('savepoint s')
      const e = (await c.query(sql).catch((x: Error) => x)) as Refusal
      expect(e.code, `${sql}: ${e.message}`).toBe('42501')
      expect(e.message).toMatch(UNSETTLED)
      await c.query('rollback to savepoint s')
    }
    await c.query('rollback')
    expect(await locked()).toBe(0)

    await c.query('begin')
    await c.query(`declare held cursor with hold for select rt_pl('(1)') from generate_series(1, 3)`)
    const e = (await c.query(table(i, true)).catch((x: Error) => x)) as Refusal
    expect(e.code, e.message).toBe('42501')
    expect(e.detail).toMatch(/WITH HOLD/)
    await c.query('commit').catch(() => {})
    expect(await locked()).toBe(0)
    await c.end()
  })

  it('still lets built-in calls and casts to SQL type names through after CREATE TABLE', async () => {
    const c = await t.client()
    await c.query('begin')
    await c.query('create table public.plain_rows (id int)')
    // (Masking does not know what a session's uncommitted table changed, so only the row count is checked.)
    expect((await c.query("select length('abc') as n, 2::int + 3 as s, upper('a') as u")).rows).toHaveLength(1)
    await c.query('commit')
    await c.end()
  })
})

/**
 * A volatile function is judged by its declared volatility when its body is one dbgate cannot see
 * through (DDL, dynamic SQL): a write, which a policy may allow. Its DDL was no change to the
 * catalog as far as the calls after it were concerned, so `select remake(); select peek(1)` ran the
 * body `remake` had just put in place. Such a call now counts as a change to the catalog.
 */
describe('a volatile function whose body changes the catalog', () => {
  let db: UpstreamInfo
  let t: PipelineTunnel
  const direct = <T>(fn: (c: pg.Client) => Promise<T>) => withClient(db.url, fn)
  const locked = async (key: number) => direct(async (d) => (await d.query(`select count(*)::int n from pg_locks where locktype = 'advisory' and database = (select oid from pg_database where datname = current_database()) and objid = $1`, [key])).rows[0].n as number)
  const replace = (target: string, key: number) => `create or replace function public.${target}(int) returns int stable language sql as 'select $1 + 0 * length(pg_advisory_lock(${key})::text)'`

  /** Volatile functions (writes) are allowed here; session functions are not. */
  const WRITES = ['rules:', '  - id: no-session-functions', '    match: {class: session, command: function}', '    action: deny', '  - id: writes', '    match: {class: write}', '    action: allow', '  - id: ddl', '    match: {class: ddl}', '    action: allow'].join('\n')

  const CHANGERS: {name: string; setup: (target: string, key: number) => string; remake: string}[] = [
    {name: 'PL/pgSQL DDL', setup: (g, k) => `create function public.v_pl() returns int volatile language plpgsql as $b$ begin ${replace(g, k)}; return 1; end $b$`, remake: 'select public.v_pl()'},
    {name: 'SQL DDL', setup: (g, k) => `create function public.v_sql() returns int volatile language sql as $b$ ${replace(g, k)}; select 1 $b$`, remake: 'select public.v_sql()'},
    {name: 'dynamic SQL', setup: (g, k) => `create function public.v_dyn() returns int volatile language plpgsql as $b$ begin execute ${`$q$${replace(g, k)}$q$`}; return 1; end $b$`, remake: 'select public.v_dyn()'},
    {
      name: 'nested in a stable body',
      setup: (g, k) => `create function public.v_in() returns int volatile language plpgsql as $b$ begin ${replace(g, k)}; return 1; end $b$; create function public.v_out() returns int stable language sql as $b$ select public.v_in() $b$`,
      remake: 'select public.v_out()',
    },
    {name: 'a procedure called from a body', setup: (g, k) => `create procedure public.v_proc() language sql as $b$ ${replace(g, k)} $b$; create function public.v_call() returns int volatile language plpgsql as $b$ begin call public.v_proc(); return 1; end $b$`, remake: 'select public.v_call()'},
  ]
  const target = (i: number) => `vt_${i}`
  const key = (i: number) => 5600 + i

  beforeAll(async () => {
    db = await createTestDatabase()
    for (const [i, c] of CHANGERS.entries()) await direct((d) => d.query(`create function public.${target(i)}(int) returns int stable language sql as $$ select $1 $$; ${c.setup(target(i), key(i))}`))
    await direct((d) => d.query('create sequence public.v_seq; create function public.v_writer() returns bigint volatile language sql as $$ select nextval(\'public.v_seq\') $$'))
    t = await openPipelineTunnel(db, WRITES)
  })
  afterAll(() => t?.close())

  it('holds the calls after it: same text, open transaction, pipeline', async () => {
    for (const [i, ch] of CHANGERS.entries()) {
      const call = `select ${target(i)}(1)`
      const c = await t.client()
      const sameText = (await c.query(`${ch.remake}; ${call}`).catch((x: Error) => x)) as Refusal
      expect(sameText.code, `${ch.name}: same text: ${sameText.message}`).toBe('42501')
      expect(sameText.message, ch.name).toMatch(UNSETTLED)

      await c.query('begin')
      expect((await c.query(ch.remake)).rows, ch.name).toHaveLength(1)
      const inTx = (await c.query(call).catch((x: Error) => x)) as Refusal
      expect(inTx.code, `${ch.name}: open transaction: ${inTx.message}`).toBe('42501')
      await c.query('rollback')
      expect(await locked(key(i)), ch.name).toBe(0)

      const raw = await t.raw()
      raw.send(...[ch.remake, call].flatMap((text) => [serialize.parse({text}), serialize.bind({}), serialize.execute({})]), serialize.sync())
      const msgs = await raw.untilReady()
      expect(errorOf(msgs)?.code, `${ch.name}: pipeline ${codes(msgs)}`).toBe('42501')
      raw.end()
      expect(await locked(key(i)), ch.name).toBe(0)
      await c.end()
    }
  })

  it('judges the call by the new body once committed, and leaves a function that only writes data alone', async () => {
    const c = await t.client()
    await c.query(CHANGERS[0]!.remake)
    const after = (await c.query(`select ${target(0)}(1)`).catch((x: Error) => x)) as Refusal
    expect(after.message).toMatch(/no-session-functions/)
    expect(await locked(key(0))).toBe(0)
    // nextval in a body is a write, not a change to the catalog: the call after it is judged as usual.
    expect((await c.query(`select public.v_writer(); select ${target(1)}(1) as v`).then(() => 'ran', (x: Error) => x.message))).toBe('ran')
    await c.end()
  })
})
