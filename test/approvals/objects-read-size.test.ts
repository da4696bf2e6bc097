/**
 * The tunnel reads the database's objects twice for every approval (objects.ts): the read must
 * grow with the number of tables, not with the number of their columns (nor with the TOAST tables
 * and system columns no statement can change). On a schema of wide tables a row per column made
 * the read many times larger than the schema's tables, views and functions. Measured as rows, on
 * a real PostgreSQL.
 */
import {beforeAll, expect, it} from 'vitest'
import {databaseObjects, OBJECTS_SQL} from '../../src/approvals/objects.js'
import {createTestDatabase, withClient} from '../helpers/pg.js'
import type {UpstreamInfo} from '../helpers/pg.js'

let db: UpstreamInfo
beforeAll(async () => {
  db = await createTestDatabase('objects_read_size')
})

const read = () => withClient(db.url, async (c) => databaseObjects((await c.query(OBJECTS_SQL)).rows))

it('grows by a few rows a table, however wide its tables are', async () => {
  const before = (await read()).size
  const columns = Array.from({length: 40}, (_, i) => `c${i} text`).join(', ')
  await withClient(db.url, (c) =>
    c.query(`do $$ begin for i in 1..200 loop
      execute format('create table wide%s (id int primary key, ${columns}) with (autovacuum_enabled = false)', i);
      execute format('create view wide_v%s as select * from wide%s', i, i);
    end loop; end $$`),
  )
  const after = await read()
  // A table: itself, its row type and its array, its key and its NOT NULL; a view: itself, its rule, its types.
  expect((after.size - before) / 200).toBeLessThanOrEqual(12)
  // A column renamed (and another put under its name) still counts, in its relation's definition.
  const h = after.get([...after.values()].find((o) => o.what === 'relation wide7')!.k)!.h
  await withClient(db.url, (c) => c.query('alter table wide7 rename column c4 to c4_old; alter table wide7 rename column c5 to c4'))
  expect((await read()).get([...after.values()].find((o) => o.what === 'relation wide7')!.k)!.h).not.toBe(h)
})
