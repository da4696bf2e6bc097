import {describe, expect, it} from 'vitest'
import type pg from 'pg'
import {wipedAccounts} from './wiping-code.js'
import {seededTunnel} from '../helpers/seeded-tunnel.js'
import {refusedByRule} from './unfiltered.js'

/**
 * A table made in a transaction that is still open, whose writes run code the CREATE does not
 * show. The catalog is read on a connection of the tunnel's own, which cannot see the new table
 * until it is committed, so the lookup of what a write to it runs (triggers, defaults, checks,
 * index expressions, domain checks) found nothing. Before, with DDL allowed (or a CREATE TABLE
 * approved by a reviewer who saw only `LIKE code_default INCLUDING ALL`), `begin; create table t
 * (like code_default including all); insert into t (id) values (1)` ran code_default's default,
 * which deletes every account, with no check: the new table only counted as a new row type.
 */
describe('writes to a table made in the same uncommitted transaction', () => {
  const {db, t, direct} = seededTunnel(`
    create table accounts (id int primary key, balance int);
    create function wipe() returns int language plpgsql as $$ begin delete from accounts; return 1; end $$;
    -- Declared IMMUTABLE (as generated columns and index expressions need): its body calls one that is not.
    create function quiet(int) returns int language plpgsql immutable as $$ begin perform wipe(); return $1; end $$;
    create table code_default (id int, x int default wipe());
    create table code_check (id int check (quiet(id) > 0));
    create table code_index (id int);
    create index on code_index ((quiet(id)));
    create table code_generated (id int, g int generated always as (quiet(id)) stored);
    create domain wiping_int as int check (quiet(value) > 0);
    create table code_domain (id int, x wiping_int);
    create table parent (id int, x int default wipe());
    create table plist (id int, x int default wipe()) partition by list (id);
  `, ['rules:', '  - id: ddl', '    match: {class: ddl}', '    action: allow'].join('\n'))
  const {accounts, refill} = wipedAccounts(() => db.url)
  /** A client of its own for `fn`, closed whatever happens (a transaction left open would hold accounts' locks). */
  const session = async (fn: (c: pg.Client) => Promise<void>) => {
    const c = await t.client()
    try {
      await fn(c)
    } finally {
      await c.end()
    }
  }


  // Each: the CREATE (DDL, allowed here) and a write to what it made, which runs code from elsewhere.
  const routes: Record<string, [string, string]> = {
    'LIKE … INCLUDING ALL': ['create table n_all (like code_default including all)', 'insert into n_all (id) values (1)'],
    'LIKE … INCLUDING DEFAULTS, temporary': ['create temp table n_tmp (like code_default including defaults)', 'insert into n_tmp (id) values (1)'],
    'LIKE … INCLUDING CONSTRAINTS': ['create table n_con (like code_check including constraints)', 'insert into n_con values (1)'],
    'LIKE … INCLUDING INDEXES': ['create table n_idx (like code_index including indexes)', 'insert into n_idx values (1)'],
    'LIKE … INCLUDING GENERATED': ['create table n_gen (like code_generated including generated)', 'insert into n_gen (id) values (1)'],
    'LIKE of a table with a domain column': ['create table n_dom (like code_domain)', 'insert into n_dom values (1, 1)'],
    'a column of a domain type': ['create table n_col (id int, x wiping_int)', 'insert into n_col values (1, 1)'],
    INHERITS: ['create table n_child (extra int) inherits (parent)', 'insert into n_child (id) values (1)'],
    'PARTITION OF': ['create table n_part partition of plist for values in (1)', 'insert into n_part (id) values (1)'],
    'CREATE TABLE … AS with a domain column': ['create table n_ctas as select * from code_domain limit 0', 'insert into n_ctas values (1, 1)'],
    'SELECT … INTO with a domain column': ['select * into n_into from code_domain limit 0', 'update n_into set x = 1 where id = 1'],
  }

  it('holds the write for a reviewer until the table is committed, in a transaction block', async () => {
    for (const [name, [create, write]] of Object.entries(routes)) {
      await refill()
      await session(async (c) => {
        await c.query('begin')
        await c.query(create)
        const e = await refusedByRule(c, write, /rule default\.unsettled-catalog-approval/)
        expect(e.detail, name).toMatch(/the triggers a write to \w+ fires may run code this session changed in a transaction that is not committed yet/)
      })
      expect(await accounts(), name).toBe(10)
    }
  })

  it('holds it in a text that creates and writes at once, and in the extended protocol', async () => {
    for (const [name, [create, write]] of Object.entries(routes)) {
      await refill()
      await session(async (c) => {
        await refusedByRule(c, `${create}; ${write}`, /rule default\.unsettled-catalog-approval/)
      })
      await session(async (c) => {
        await c.query('begin')
        await c.query(create)
        // A named statement makes node-postgres use Parse/Bind/Execute.
        const e = (await c.query({name: 'write', text: write}).catch((x: Error) => x)) as Error & {code?: string}
        expect(e, name).toBeInstanceOf(Error)
        expect(e.code, name).toBe('42501')
      })
      expect(await accounts(), name).toBe(10)
    }
  })

  it('judges the write by the committed catalog once the table is committed', async () => {
    await refill()
    const c = await t.client()
    await c.query('begin')
    await c.query('create table n_later (like code_default including all)')
    await c.query('commit')
    const e = await refusedByRule(c, 'insert into n_later (id) values (1)', /rule default\.no-unfiltered-delete/)
    expect(e.detail).toMatch(/public\.wipe/)
    expect(await accounts()).toBe(10)
    await c.end()
  })

  it('still lets a new table of built-in types be filled in the transaction that makes it', async () => {
    await refill()
    const c = await t.client()
    await c.query('begin')
    await c.query("create table n_plain (id int primary key, note text default 'x', at timestamptz default now(), n serial)")
    await c.query('insert into n_plain (id) values (1), (2)')
    await c.query('update n_plain set note = $1 where id = $2', ['y', 2])
    await c.query('commit')
    expect((await c.query('select id, note from n_plain order by id')).rows).toEqual([
      {id: 1, note: 'x'},
      {id: 2, note: 'y'},
    ])
    // A write to another table in the same transaction is judged by the committed catalog as before.
    await c.query('begin')
    await c.query('create table n_plain2 (id int)')
    await c.query('update accounts set balance = 101 where id = 1')
    await c.query('commit')
    expect(await accounts()).toBe(10)
    await c.end()
  })
})
