import {describe, expect, it} from 'vitest'
import type pg from 'pg'
import {seededTunnel} from '../helpers/seeded-tunnel.js'
import type {Refusal} from './unfiltered.js'
import {expectEachRefused, wipedAccounts, WIPING_CODE, BOXED_OPCLASS} from './wiping-code.js'

/**
 * Code a write runs that no column, constraint or index expression names: a partitioned table's
 * key (`partition by range (public.qquiet(id))`), evaluated on every row routed into it, and on
 * every row written straight into one of its partitions, which is checked against its ancestors'
 * bounds; and the support functions of an index's operator class (a btree's comparison function
 * orders each new key among the others). Before, what a write runs was read from defaults,
 * constraints, index expressions and domains only, so with the default pack `insert into pk
 * values (1, 1)` ran qquiet, which deletes every account, with no reviewer.
 */
describe('code a write runs through partition keys and operator classes', () => {
  // Qualified throughout: PostgreSQL evaluates partition keys and index support functions with
  // search_path set to pg_catalog in some routes, and an attacker would write them so.
  const {db, t, direct} = seededTunnel([
    `
      ${WIPING_CODE}
      create table pk (id int, y int) partition by range (public.quiet(id));
      create table pk_all partition of pk for values from (minvalue) to (maxvalue);
      create table pl (id int, y int) partition by list (y);
      create table pl_1 partition of pl for values in (1) partition by range (public.quiet(id));
      create table pl_1_all partition of pl_1 for values from (minvalue) to (maxvalue);
      create table pl_2 partition of pl for values in (2);
      ${BOXED_OPCLASS}
      create table t_opclass (id int, b boxed);
      create unique index on t_opclass (b boxed_ops);
      -- Partitioned by a list of a column, with a partition partitioned by an operator class of a user's.
      create table by_boxed (id int, b boxed) partition by range (b boxed_ops);
      create table by_boxed_all partition of by_boxed for values from (minvalue) to (maxvalue);
    `,
    // One key in the index, so the next insert compares with it (done directly, as setup).
    'insert into t_opclass values (1, row(1)); delete from accounts',
  ])
  const {accounts, refill} = wipedAccounts(() => db.url)

  const writes: Record<string, string> = {
    'a row routed by the key': 'insert into pk values (1, 1)',
    'rows routed by COPY': 'copy pk from stdin',
    'a row written straight into the partition': 'insert into pk_all values (1, 1)',
    'a row routed into a sub-partitioned partition': 'insert into pl values (1, 1)',
    'a row moved into it by an UPDATE': 'update pl set y = 1 where id = 2',
    'a row written straight into the sub-partition': 'insert into pl_1_all values (1, 1)',
    "an index's operator class": 'insert into t_opclass values (2, row(2))',
    "a partition key's operator class": 'insert into by_boxed values (2, row(2))',
  }

  it('refuses each, as a simple query and in the extended protocol, and no account is deleted', async () => {
    await expectEachRefused(t, writes, {accounts, refill})
  })

  it('names the function that does the harm', async () => {
    const c = await t.client()
    const e = (await c.query('insert into pk_all values (1, 1)').catch((x: Error) => x)) as Refusal
    expect(e.detail).toMatch(/public\.wipe deletes every row of public\.accounts/)
    const f = (await c.query('insert into t_opclass values (2, row(2))').catch((x: Error) => x)) as Refusal
    expect(f.detail).toMatch(/public\.wipe deletes every row of public\.accounts/)
    await c.end()
  })

  it('still lets writes through partition keys and indexes of built-in code run', async () => {
    await direct((c) => c.query('create table plain_p (id int, y text) partition by range (id, lower(y)); create table plain_p_all partition of plain_p default; create index on plain_p (y text_pattern_ops)'))
    const c = await t.client()
    await c.query("insert into plain_p values (1, 'A')")
    await c.query("insert into plain_p_all values (2, 'B')")
    expect((await c.query('select count(*)::int n from plain_p')).rows).toEqual([{n: 2}])
    await c.end()
  })
})
