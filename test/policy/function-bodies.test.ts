import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import pg from 'pg'
import {serialize} from 'pg-protocol'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {codes, errorOf} from '../helpers/raw-client.js'
import {MAX_BODY_CHARS, MAX_BODY_STATEMENTS} from '../../src/policy/function-body.js'

/**
 * A STABLE or IMMUTABLE user function is its author's word, not proof: PostgreSQL lets such a
 * function call set_config, take advisory locks, move sequences, unlink large objects, notify and
 * run SQL text. Each family below is created on the database directly (as a database that already
 * has them would), called through the real tunnel every way a client can reach a function, and the
 * database is checked afterwards: nothing happened.
 */
const LOCK_KEYS = [4711, 4712, 4713, 4714, 4715, 4716]
const LARGE_OBJECT = 424242

describe('user functions are judged by what their bodies do', () => {
  let db: UpstreamInfo
  let t: PipelineTunnel
  let superuser = false
  const direct = <T>(fn: (c: pg.Client) => Promise<T>) => withClient(db.url, fn)

  beforeAll(async () => {
    db = await createTestDatabase()
    superuser = await direct(async (c) => (await c.query('select rolsuper from pg_roles where rolname = current_user')).rows[0].rolsuper === true)
    await direct((c) =>
      c.query(`
        create table accounts (id int primary key, owner text);
        insert into accounts select g, 'owner' || g from generate_series(1, 5) g;
        create sequence s;
        select lo_create(${LARGE_OBJECT});
        create schema hidden;

        -- Direct, PL/pgSQL and SQL, STABLE and IMMUTABLE.
        create function public.peek_setting(int) returns int language plpgsql stable as $$ begin perform set_config('search_path', 'evil', false); return $1; end $$;
        create function public.peek_lock(int) returns int language plpgsql stable as $$ begin perform pg_advisory_lock(4711); return $1; end $$;
        create function public.peek_lock_sql(int) returns int language sql immutable as $$ select pg_advisory_lock(4712); select $1 $$;
        create function public.peek_next(int) returns int language sql stable as $$ select nextval('s')::int + $1 $$;
        create function public.peek_next_assign(int) returns int language plpgsql stable as $$ declare v bigint; begin v := nextval('s'); return $1; end $$;
        create function public.peek_reset(int) returns int language plpgsql immutable as $$ begin if setval('s', 500) > 0 then return $1; end if; return 0; end $$;
        create function public.peek_unlink(int) returns int language plpgsql stable as $$ begin perform lo_unlink(${LARGE_OBJECT}); return $1; end $$;
        create function public.peek_notify(int) returns int language sql stable as $$ select pg_notify('dbgate_fb', 'from a body'); select $1 $$;
        create function public.peek_terminate(int) returns int language plpgsql stable as $$ begin execute 'select pg_terminate_backend(pg_backend_pid())'; return $1; end $$;
        create function public.peek_kill(int) returns int language sql stable as $$ select $1 from pg_stat_activity where pg_terminate_backend(0) $$;
        create function public.peek_xml(int) returns int language sql stable as $$ select length(query_to_xml('select nextval(''s'')', true, false, '')::text) * 0 + $1 $$;
        create function public.peek_atomic(int) returns int language sql stable begin atomic select nextval('s')::int + $1; end;
        create function public.peek_return(int) returns int language sql stable return pg_advisory_lock(4716)::text::int;
        create domain public.locked_int as int check (value + 0 * length(pg_advisory_lock(4711)::text) > 0);
        create function public.peek_domain(int) returns int language plpgsql stable as $$ declare d public.locked_int; begin d := $1; return d; end $$;
        create function public.peek_open(int) returns int language plpgsql stable as $$ declare c refcursor; begin open c for execute 'select 1'; close c; return $1; end $$;
        create function public.peek_for(int) returns int language plpgsql stable as $$ declare r record; begin for r in execute 'select 1' loop end loop; return $1; end $$;
        -- libpg_query's PL/pgSQL tree takes a variable of a type it does not know (a domain, an
        -- enum, a row type, record) for a record, and leaves a record's default out of its tree.
        create type public.mood as enum ('calm', 'odd');
        create function public.peek_rec_default(int) returns int language plpgsql stable as $$ declare r accounts := row(nextval('s')::int, 'x'); begin return $1; end $$;
        create function public.peek_rec_nested(int) returns int language plpgsql stable as $$
          begin
            declare
              n int := 1;
              "Odd Name" public.mood
                default case when length(pg_advisory_lock(4712)::text) = 0
                  then 'calm'::public.mood end; begin null; end;
            return $1;
          end $$;
        create function public.peek_rec_record(int) returns int language plpgsql stable as $$ declare q record = row(nextval('s')); begin return $1; end $$;
        -- What a body returns is converted to its declared result types, running their domains' checks.
        create type public.locked_row as (v public.locked_int);
        create function public.peek_ret_sql(int) returns public.locked_int language sql stable as $$ select $1 $$;
        create function public.peek_ret_pl(int) returns public.locked_int language plpgsql stable as $$ begin return $1; end $$;
        create function public.peek_ret_atomic(int) returns public.locked_int language sql stable return $1;
        create function public.peek_ret_out(int, out o public.locked_int) language sql stable as $$ select $1 $$;
        create function public.peek_ret_table(int) returns table (o public.locked_int) language sql stable as $$ select $1 $$;
        create function public.peek_ret_setof(int) returns setof public.locked_int language plpgsql stable as $$ begin return next $1; end $$;
        create function public.peek_ret_row(int) returns public.locked_row language sql stable as $$ select $1 $$;
        -- An argument converted into an array of a domain, a VARIADIC one, or a composite with a domain attribute.
        create function public.peek_arg_array(a public.locked_int[]) returns int language plpgsql stable as $$ begin return 1; end $$;
        create function public.peek_arg_variadic(variadic a public.locked_int[]) returns int language plpgsql stable as $$ begin return 1; end $$;
        create function public.peek_arg_row(r public.locked_row) returns int language plpgsql stable as $$ begin return 1; end $$;
        create function public.peek_rq(int) returns setof int language plpgsql stable as $$ begin return query execute 'select $1' using $1; end $$;

        -- Nested two deep, and through a SET search_path clause.
        create function hidden.take_lock() returns int language sql stable as $$ select pg_advisory_lock(4713); select 1 $$;
        create function public.middle() returns int language plpgsql immutable as $$ begin return hidden.take_lock(); end $$;
        create function public.peek_nested(int) returns int language sql stable as $$ select public.middle() + $1 $$;
        create function hidden.helper() returns int language sql stable as $$ select pg_advisory_lock(4714); select 1 $$;
        create function public.peek_path(int) returns int language sql stable set search_path = hidden as $$ select helper() + $1 $$;
        -- A body runs under its function's own settings: under standard_conforming_strings = off a
        -- backslash escapes a quote, and the server would read other statements than dbgate's parser.
        create function public.peek_lexer(int) returns int language sql stable set standard_conforming_strings = off as $$ select $1 $$;

        -- A cycle.
        create function public.ping(int) returns int language plpgsql stable as $$ begin if $1 <= 0 then return 0; end if; return public.pong($1 - 1); end $$;
        create function public.pong(int) returns int language plpgsql stable as $$ begin perform pg_advisory_lock(4715); return public.ping($1); end $$;

        -- Reached through an operator and a view.
        create function public.lock_cmp(int, int) returns boolean language plpgsql stable as $$ begin perform pg_advisory_lock(4711); return $1 = $2; end $$;
        create operator public.=== (leftarg = int, rightarg = int, function = public.lock_cmp);
        create view public.locking_view as select id, public.peek_lock(id) as x from accounts;

        -- The allowed side: functions that only read or compute.
        create function public.owner_of(int) returns text language sql stable as $$ select owner from accounts where id = $1 $$;
        create function public.double_it(int) returns int language sql immutable as $$ select $1 * 2 $$;
        create function public.triple(int) returns int language sql immutable return $1 * 3;
        create function public.owners_upto(n int) returns setof text language plpgsql stable as $$
          declare r record; total int := 0;
          begin
            for r in select owner from accounts where id <= n order by id loop
              total := total + 1;
              return next r.owner;
            end loop;
            if total > 100 then raise notice 'many: %', total; end if;
            return;
          end $$;
        create function public.owner_twice(int) returns text language sql stable as $$ select public.owner_of($1) || public.owner_of(public.double_it($1)) $$;
        create view public.owners_view as select id, public.owner_of(id) as o from accounts;
        create function public.first_mood(int) returns public.mood language plpgsql stable as $$
          declare r accounts; m public.mood := 'calm'; q record := null;
          begin select * into r from accounts where id = $1; return m; end $$;
      `),
    )
    if (superuser) {
      await direct((c) => c.query(`create function public.lock_alias(bigint) returns void language internal stable as 'pg_advisory_lock_int8'`))
    }
    // Session effects and sequence writes are allowed when a client calls them itself; here they are
    // denied, so that a body that reaches them shows it is judged like the client's own call.
    t = await openPipelineTunnel(
      db,
      [
        'rules:',
        '  - id: no-session-functions',
        '    match: {class: session, command: function}',
        '    action: deny',
        '    reason: advisory locks and notifications belong to the application',
        '  - id: no-function-writes',
        '    match: {class: write, command: function}',
        '    action: deny',
        '    reason: sequences and large objects are written by the application only',
        '  - id: allow-ddl',
        '    match: {class: ddl}',
        '    action: allow',
      ].join('\n'),
    )
  })
  afterAll(() => t?.close())

  const refused = async (c: pg.Client, query: string | pg.QueryConfig): Promise<Error & {code?: string; detail?: string}> => {
    const e = (await c.query(query).catch((x: Error) => x)) as Error & {code?: string; detail?: string}
    expect(e, JSON.stringify(query)).toBeInstanceOf(Error)
    expect(e.code, JSON.stringify(query)).toBe('42501')
    return e
  }
  const nothingHappened = async () => {
    await direct(async (c) => {
      expect((await c.query(`select count(*)::int n from pg_locks where locktype = 'advisory' and database = (select oid from pg_database where datname = current_database()) and objid = any($1::int[])`, [LOCK_KEYS])).rows[0].n).toBe(0)
      expect((await c.query('select last_value::int v, is_called from s')).rows[0]).toEqual({v: 1, is_called: false})
      expect((await c.query('select count(*)::int n from pg_largeobject_metadata where oid = $1', [LARGE_OBJECT])).rows[0].n).toBe(1)
    })
  }

  /** Every way a client reaches a one-argument function `fn`. */
  const callForms = (fn: string): (string | pg.QueryConfig)[] => [
    `select ${fn}(1)`,
    `select id from accounts where id = ${fn}(1)`,
    `with x as (select ${fn}(2) as v) select v from x`,
    `select * from accounts a join lateral (select ${fn}(a.id)) l on true`,
    {text: `select ${fn}($1::int)`, values: [1]},
  ]

  it('refuses each body family however it is called, names what in the body decided, and nothing happens', async () => {
    const c = await t.client()
    const families: [string, RegExp][] = [
      ['peek_setting', /public\.peek_setting calls pg_catalog\.set_config inside its body/],
      ['peek_lock', /public\.peek_lock calls pg_catalog\.pg_advisory_lock inside its body/],
      ['peek_lock_sql', /public\.peek_lock_sql calls pg_catalog\.pg_advisory_lock inside its body/],
      ['peek_next', /public\.peek_next calls pg_catalog\.nextval inside its body/],
      ['peek_next_assign', /public\.peek_next_assign calls pg_catalog\.nextval inside its body/],
      ['peek_reset', /public\.peek_reset calls pg_catalog\.setval inside its body/],
      ['peek_unlink', /public\.peek_unlink calls pg_catalog\.lo_unlink inside its body/],
      ['peek_notify', /public\.peek_notify calls pg_catalog\.pg_notify inside its body/],
      ['peek_terminate', /public\.peek_terminate runs SQL built at run time inside its body \(EXECUTE at line 1\)/],
      ['peek_kill', /public\.peek_kill calls pg_catalog\.pg_terminate_backend inside its body/],
      ['peek_xml', /public\.peek_xml calls pg_catalog\.query_to_xml inside its body/],
      ['peek_atomic', /public\.peek_atomic calls pg_catalog\.nextval inside its body/],
      ['peek_return', /public\.peek_return calls pg_catalog\.pg_advisory_lock inside its body/],
      ['peek_domain', /public\.peek_domain calls pg_catalog\.pg_advisory_lock inside its body \(cast to public\.locked_int: pg_catalog\.pg_advisory_lock \(check of domain public\.locked_int\)/],
      ['peek_open', /public\.peek_open runs SQL built at run time inside its body \(EXECUTE at line 1\)/],
      ['peek_for', /public\.peek_for runs SQL built at run time inside its body \(FOR … IN EXECUTE at line 1\)/],
      ['peek_rq', /public\.peek_rq runs SQL built at run time inside its body \(EXECUTE at line 1\)/],
      ['peek_nested', /public\.peek_nested calls public\.middle inside its body .*public\.middle calls hidden\.take_lock inside its body .*pg_catalog\.pg_advisory_lock/],
      ['peek_path', /public\.peek_path calls hidden\.helper inside its body .*pg_advisory_lock/],
      ['ping', /calls itself/],
      ['peek_rec_default', /public\.peek_rec_default calls pg_catalog\.nextval inside its body/],
      ['peek_rec_nested', /public\.peek_rec_nested calls pg_catalog\.pg_advisory_lock inside its body/],
      ['peek_rec_record', /public\.peek_rec_record calls pg_catalog\.nextval inside its body/],
      ...['sql', 'pl', 'atomic', 'out', 'table', 'setof', 'row'].map(
        (k): [string, RegExp] => [`peek_ret_${k}`, new RegExp(`public\\.peek_ret_${k} calls pg_catalog\\.pg_advisory_lock inside its body \\(cast to public\\.(locked_int|locked_row)`)],
      ),
      ['peek_lexer', /public\.peek_lexer sets standard_conforming_strings=off for its body, which dbgate does not read it under/],
    ]
    for (const [fn, why] of families) {
      for (const form of callForms(fn)) {
        const e = await refused(c, form)
        expect(`${e.message} ${e.detail ?? ''}`, `${fn}: ${JSON.stringify(form)}`).toMatch(why)
      }
    }
    // The session is still there (no backend was terminated) and its search_path is its own.
    expect((await c.query('show search_path')).rows[0].search_path).toBe('"$user", public')
    await nothingHappened()
  })

  it('refuses an argument converted into an array, a VARIADIC list or a composite that holds a checked domain', async () => {
    const c = await t.client()
    for (const sql of [
      'select peek_arg_array(array[1])',
      'select peek_arg_array(array[id]) from accounts',
      'select peek_arg_variadic(1, 2)',
      'select id from accounts where peek_arg_variadic(id) = 1',
      'select peek_arg_row(row(1))',
      {text: 'select peek_arg_array($1::int[])', values: ['{1}']},
    ]) {
      const e = await refused(c, sql)
      expect(`${e.message} ${e.detail ?? ''}`, JSON.stringify(sql)).toMatch(/pg_catalog\.pg_advisory_lock \(check of domain (public\.)?locked_int \(an argument of public\.peek_arg_(array|variadic|row)\)\)/)
    }
    await nothingHappened()
  })

  it('refuses a view and an operator whose functions lie about their volatility', async () => {
    const c = await t.client()
    for (const sql of ['select * from locking_view', 'select count(*) from locking_view where id = 1', 'select 1 === 1', 'select id from accounts where id === 2']) {
      const e = await refused(c, sql)
      expect(`${e.message} ${e.detail ?? ''}`, sql).toMatch(/public\.(peek_lock \(view public\.locking_view\)|lock_cmp \(operator public\.===\)) calls pg_catalog\.pg_advisory_lock inside its body/)
    }
    await nothingHappened()
  })

  it('refuses them through PREPARE/EXECUTE and a named extended-protocol statement', async () => {
    const c = await t.client()
    await refused(c, 'prepare p1 as select peek_lock($1)')
    expect((await c.query('prepare p2 as select owner_of($1)')).command).toBe('PREPARE')
    expect((await c.query('execute p2(1)')).rowCount).toBe(1)
    await refused(c, {name: 'lock-by-name', text: 'select peek_lock_sql($1::int) as v', values: [1]})
    await refused(c, {name: 'next-by-name', text: 'select id from accounts where id = peek_next($1)', values: [1]})
    await nothingHappened()
  })

  it('sends no notification from a body', async () => {
    const listener = new pg.Client({connectionString: db.url})
    await listener.connect()
    const heard: string[] = []
    listener.on('notification', (n) => heard.push(String(n.payload)))
    await listener.query('listen dbgate_fb')
    try {
      const c = await t.client()
      await refused(c, 'select peek_notify(1)')
      await refused(c, 'select * from accounts where id = peek_notify(id)')
      // Notifications arrive in commit order: once the sentinel is heard, any earlier one would have been.
      await direct((d) => d.query(`select pg_notify('dbgate_fb', 'sentinel')`))
      await new Promise<void>((resolve) => {
        const check = () => (heard.includes('sentinel') ? resolve() : setTimeout(check, 20))
        check()
      })
      expect(heard).toEqual(['sentinel'])
    } finally {
      await listener.end()
    }
  })

  it('refuses a function in a language whose body it cannot read (an internal alias of a built-in)', async () => {
    if (!superuser) return
    const c = await t.client()
    const e = await refused(c, 'select lock_alias(4711)')
    expect(`${e.message} ${e.detail ?? ''}`).toMatch(/public\.lock_alias is written in internal, whose body dbgate cannot read/)
    await nothingHappened()
  })

  it("allows a user range type's own constructors, and refuses an internal function that only looks like one", async () => {
    await direct((d) => d.query('create type public.floatrange as range (subtype = float8)'))
    const c = await t.client()
    // The constructors CREATE TYPE made, in the user's schema, written in internal (range_constructor2/3, multirange_constructor0/1/2).
    // (Masking, on in this tunnel, still masks a user function's output as untraceable: only the verdict is policy's.)
    for (const sql of [`select floatrange(1, 2)`, `select floatrange(1, 2, '[]')`, `select floatmultirange()`, `select floatmultirange(floatrange(1, 2))`, `select floatmultirange(floatrange(1, 2), floatrange(3, 4))`]) {
      expect((await c.query(sql)).rowCount, sql).toBe(1)
    }
    if (!superuser) return
    // The same C function under another name, returning the same type: not the type's constructor.
    await direct((d) => d.query(`create function public.make_floats(float8, float8) returns public.floatrange language internal immutable as 'range_constructor2'`))
    const e = await refused(c, 'select make_floats(1, 2)')
    expect(`${e.message} ${e.detail ?? ''}`).toMatch(/public\.make_floats is written in internal, whose body dbgate cannot read/)
  })

  it('judges a function whose body is over the size dbgate reads as unknown, naming the limit; one just under is judged by its body', async () => {
    // Each assignment is one expression judged; the declarations' types, v's default and the RETURN are four more.
    const sums = (expressions: number) => `declare v int := $1; begin ${'v := v + 1; '.repeat(expressions - 4)}return v; end`
    await direct((d) =>
      d.query(`
        create function public.long_sum(int) returns int language plpgsql immutable as $$ ${sums(MAX_BODY_STATEMENTS)} $$;
        create function public.longer_sum(int) returns int language plpgsql immutable as $$ ${sums(MAX_BODY_STATEMENTS + 1)} $$;
        create function public.wide_text() returns text language sql immutable as $$ select '${'x'.repeat(MAX_BODY_CHARS)}' $$;
      `),
    )
    const c = await t.client()
    // Allowed (masking, on in this tunnel, masks what a user function returns).
    expect((await c.query('select long_sum(1) as v')).rowCount).toBe(1)
    for (const [sql, why] of [
      ['select longer_sum(1)', new RegExp(`public\\.longer_sum has ${MAX_BODY_STATEMENTS + 1} statements and expressions in its body, more than the ${MAX_BODY_STATEMENTS} dbgate judges`)],
      ['select length(wide_text())', new RegExp(`public\\.wide_text has a body of [0-9]+ characters, more than the ${MAX_BODY_CHARS} dbgate reads`)],
    ] as const) {
      const e = await refused(c, sql)
      expect(`${e.message} ${e.detail ?? ''}`, sql).toMatch(why)
    }
  })

  it("keeps an extension's functions judged by their declared volatility (the DBA's installed code)", async () => {
    const available = await direct(async (d) => (await d.query(`select 1 from pg_available_extensions where name = 'pg_trgm'`)).rowCount === 1)
    expect(available, 'the test server ships pg_trgm').toBe(true)
    await direct((d) => d.query('create extension if not exists pg_trgm'))
    const c = await t.client()
    // similarity is an immutable C function of pg_trgm: a user's C function would be unknown.
    expect((await c.query(`select similarity('dbgate', 'db gate') > 0 as close`)).rowCount).toBe(1)
    expect((await c.query(`select show_trgm('abc') is not null as t`)).rowCount).toBe(1)
    // Membership is no proof of origin: whoever owns the extension (its creator, for a trusted one)
    // can add any function to it. A member written in SQL or PL/pgSQL is read like any other.
    await direct((d) =>
      d.query(`
        create function public.trgm_lock(int) returns int language sql stable as $$ select pg_advisory_lock(4711); select $1 $$;
        create function public.trgm_next(int) returns int language plpgsql stable as $$ begin return nextval('s')::int * 0 + $1; end $$;
        create function public.trgm_fine(int) returns int language sql immutable as $$ select $1 * 2 $$;
        alter extension pg_trgm add function public.trgm_lock(int);
        alter extension pg_trgm add function public.trgm_next(int);
        alter extension pg_trgm add function public.trgm_fine(int);
      `),
    )
    for (const [sql, why] of [
      ['select trgm_lock(1)', /public\.trgm_lock calls pg_catalog\.pg_advisory_lock inside its body/],
      ['select id from accounts where id = trgm_next(id)', /public\.trgm_next calls pg_catalog\.nextval inside its body/],
    ] as const) {
      const e = await refused(c, sql)
      expect(`${e.message} ${e.detail ?? ''}`, sql).toMatch(why)
    }
    expect((await c.query('select trgm_fine(2) as v')).rowCount).toBe(1)
    await nothingHappened()
  })

  it('sees a function replaced outside the tunnel once the catalog is re-read', async () => {
    await direct((d) => d.query(`create function public.later(int) returns int language sql stable as $$ select $1 $$`))
    const c = await t.client()
    expect((await c.query('select later(3) as v')).rowCount).toBe(1)
    await direct((d) => d.query(`create or replace function public.later(int) returns int language sql stable as $$ select pg_advisory_lock(4711); select $1 $$`))
    // DDL through the tunnel makes it re-read its catalog (as it would after its time to live).
    await c.query('create table later_marker (id int)')
    const e = (await c.query('select later(3) as v').catch((x: Error) => x)) as Error & {detail?: string}
    expect(e).toBeInstanceOf(Error)
    expect(`${e.message} ${e.detail ?? ''}`).toMatch(/public\.later calls pg_catalog\.pg_advisory_lock inside its body/)
    await nothingHappened()
  })

  it('reads its catalog again once a transaction that renamed a function through the tunnel ends, not 60 seconds later', async () => {
    await direct((d) => d.query(`create function public.later_tx(int) returns int language sql stable as $$ select $1 $$;
      create function public.locking_tx(int) returns int language sql stable as $$ select pg_advisory_lock(4712); select $1 $$`))
    const c = await t.client()
    for (const end of ['commit', 'end']) {
      expect((await c.query('select later_tx(1) as v')).rowCount).toBe(1)
      await c.query('begin')
      // Plain DDL (allowed here) that puts the locking body under the name a client calls.
      await c.query('alter function public.later_tx(int) rename to harmless_tx')
      await c.query('alter function public.locking_tx(int) rename to later_tx')
      // Inside the open transaction the call is held (the catalog connection still sees the old
      // names); it was looked up all the same, and that answer was kept.
      await c.query('savepoint before_explain')
      expect((await refused(c, 'explain select later_tx(1)')).message).toMatch(/has not committed yet/)
      await c.query('rollback to savepoint before_explain')
      await c.query(end)
      const e = await refused(c, 'select later_tx(5) as v')
      expect(`${e.message} ${e.detail ?? ''}`).toMatch(/public\.later_tx calls pg_catalog\.pg_advisory_lock inside its body/)
      // Another session, whose lookups share the same catalog, sees it too.
      await refused(await t.client(), 'select later_tx(6) as v')
      await nothingHappened()
      await direct((d) => d.query('alter function public.later_tx(int) rename to locking_tx; alter function public.harmless_tx(int) rename to later_tx'))
      await c.query('create table if not exists later_tx_marker (id int)')
    }
  })

  it('judges a named statement again when it is bound after a function it calls was replaced', async () => {
    await direct((d) => d.query(`create function public.later_named(int) returns int language sql stable as $$ select $1 $$`))
    const c = await t.client()
    // node-postgres sends Parse once per name and client, then only Bind and Execute.
    const named = {name: 'later-named', text: 'select later_named($1::int) as v', values: [1]}
    const harmless = {name: 'owner-named', text: 'select owner_of($1::int) as o', values: [1]}
    expect((await c.query(named)).rowCount).toBe(1)
    expect((await c.query(harmless)).rowCount).toBe(1)
    await direct((d) => d.query(`create or replace function public.later_named(int) returns int language sql stable as $$ select pg_advisory_lock(4711); select $1 $$`))
    // DDL through the tunnel makes it re-read its catalog (as it would after its time to live).
    await c.query('create table later_named_marker (id int)')
    for (let i = 0; i < 2; i++) {
      const e = await refused(c, named)
      expect(`${e.message} ${e.detail ?? ''}`).toMatch(/public\.later_named calls pg_catalog\.pg_advisory_lock inside its body/)
    }
    await nothingHappened()
    // A statement whose functions only read is bound as before, judged again once.
    expect((await c.query(harmless)).rowCount).toBe(1)
    expect((await c.query(harmless)).rowCount).toBe(1)
  })

  it('judges a Bind of a statement made by SQL PREPARE as the EXECUTE it is, with the bodies the server has then', async () => {
    await direct((d) => d.query(`create function public.later_prepared(int) returns int language sql stable as $$ select $1 $$`))
    const r = await t.raw()
    const bindAndRun = async () => {
      r.send(serialize.bind({portal: '', statement: 'pp', values: ['1']}), serialize.execute({portal: '', rows: 0}), serialize.sync())
      return r.untilReady()
    }
    r.send(serialize.query('prepare pp as select later_prepared($1)'))
    expect(codes(await r.untilReady())).toBe('CZ')
    expect(codes(await bindAndRun())).toBe('2DCZ')
    await direct((d) => d.query(`create or replace function public.later_prepared(int) returns int language sql stable as $$ select pg_advisory_lock(4711); select $1 $$`))
    r.send(serialize.query('create table later_prepared_marker (id int)'))
    expect(codes(await r.untilReady())).toBe('CZ')
    const refusedBind = await bindAndRun()
    expect(codes(refusedBind)).toBe('EZ')
    expect(errorOf(refusedBind)?.detail ?? '').toMatch(/public\.later_prepared calls pg_catalog\.pg_advisory_lock inside its body/)
    await nothingHappened()
  })

  it('keeps reads that only read: stable SQL, immutable arithmetic, PL/pgSQL that computes and selects, nested, in a view', async () => {
    const c = await t.client()
    // (Masking hides what a function returns; the rows' count shows each call ran.)
    expect((await c.query('select owner_of(2) as o')).rowCount).toBe(1)
    expect((await c.query('select double_it(21) as d, triple(2) as t')).rowCount).toBe(1)
    expect((await c.query('select owners_upto(2) as o')).rowCount).toBe(2)
    expect((await c.query('select owner_twice(1) as o')).rowCount).toBe(1)
    // Record variables and defaults that only compute, and a user type returned.
    expect((await c.query('select first_mood(1) as m')).rowCount).toBe(1)
    expect((await c.query('select o from owners_view where id = 3')).rowCount).toBe(1)
    expect((await c.query({text: 'select id from accounts where id = double_it($1::int)', values: [2]})).rows).toEqual([{id: 4}])
    expect((await c.query('select id from accounts where id = triple(1) or owner = owner_of(1) order by id')).rows).toEqual([{id: 1}, {id: 3}])
  })
})
