/**
 * A value written into a clean column of a table whose own definition runs user code on it, in the
 * recording. Triggers, rules and row-level security were counted as code a write runs; a CHECK
 * constraint, an index expression or predicate, or a generated column that calls a user function
 * runs it as surely, with the new row's values (a user-defined operator's function too), and so does an `ON UPDATE CASCADE` foreign key
 * that carries a new key into a table with a trigger. The function may copy the value anywhere
 * (here into `customers.full_name`), while the recording kept it in clear, proven by the clean
 * column it was written into. Attack: each of these, through the tunnel.
 */
import {mkdtempSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {StatementData} from '../../src/audit/events.js'
import {sampleSchemaSql} from '../../src/demo/sample-data.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {recordedStatements} from '../audit/helpers.js'

const NAME = 'Dora Quill'

/** Each write, the customer whose full_name the table's code overwrites with the value, and what is recorded. */
const CASES: {sql: string; values: string[]; customer: number; recorded: string[]}[] = [
  {sql: 'insert into checked (id, label) values ($1, $2)', values: ['1', NAME], customer: 1, recorded: ['[masked]', '[masked]']},
  {sql: 'update checked set label = $1 where id = $2', values: [NAME, '1'], customer: 1, recorded: ['[masked]', '[masked]']},
  {sql: 'insert into indexed (id, label) values ($1, $2)', values: ['2', NAME], customer: 2, recorded: ['[masked]', '[masked]']},
  {sql: 'insert into partial_indexed (id, label) values ($1, $2)', values: ['3', NAME], customer: 3, recorded: ['[masked]', '[masked]']},
  {sql: 'insert into generated (id, label) values ($1, $2)', values: ['4', NAME], customer: 4, recorded: ['[masked]', '[masked]']},
  {sql: 'update parent_codes set code = $1 where id = $2', values: [NAME, '5'], customer: 5, recorded: ['[masked]', '[masked]']},
  {sql: 'insert into operator_checked (id, label) values ($1, $2)', values: ['6', NAME], customer: 6, recorded: ['[masked]', '[masked]']},
]

describe('values written into a table whose definition runs code, in the recording', () => {
  let db: UpstreamInfo
  let t: PipelineTunnel | undefined
  let statements: StatementData[]
  let landed: string[]

  beforeAll(async () => {
    db = await createTestDatabase('rectablecode')
    await withClient(db.url, async (c) => {
      await c.query(sampleSchemaSql())
      await c.query(`create function keep_name(v text, who int) returns boolean language plpgsql as $$
          begin update public.customers set full_name = v where id = who; return true; end $$;
        create function keep_name_text(v text, who int) returns text language plpgsql immutable as $$
          begin perform keep_name(v, who); return v; end $$;
        create function keep_name_ok(v text, who int) returns boolean language plpgsql immutable as $$
          begin perform keep_name(v, who); return true; end $$;
        create table checked (id int primary key, label text check (keep_name(label, id)));
        create table indexed (id int primary key, label text);
        create index on indexed ((keep_name_text(label, id)));
        create table partial_indexed (id int primary key, label text);
        create index on partial_indexed (id) where keep_name_ok(label, id);
        create table generated (id int primary key, label text, shown text generated always as (keep_name_text(label, id)) stored);
        create table parent_codes (id int primary key, code text unique);
        insert into parent_codes values (5, 'five');
        create table child_codes (id int primary key, code text references parent_codes (code) on update cascade);
        insert into child_codes values (5, 'five');
        create function child_kept() returns trigger language plpgsql as $$ begin perform keep_name(new.code, new.id); return new; end $$;
        create trigger child_kept before update on child_codes for each row execute function child_kept();
        create function kept_as_sixth(v text, unused text) returns boolean language plpgsql as $$ begin return keep_name(v, 6); end $$;
        create operator ==> (leftarg = text, rightarg = text, function = kept_as_sixth);
        create table operator_checked (id int primary key, label text check (label ==> ''));
        update customers set full_name = 'Unchanged' where id <= 6`)
    })
    const bucketUrl = `file://${mkdtempSync(path.join(tmpdir(), 'dbgate-rectablecode-'))}`
    t = await openPipelineTunnel(db, 'policy: none', {top: `bucket: ${bucketUrl}`})
    // Each on a connection of its own, so that no statement's distrust covers another's.
    for (const k of CASES) {
      const c = await t.client()
      await c.query(k.sql, k.values)
    }
    await t.close()
    t = undefined
    statements = await recordedStatements(bucketUrl)
    landed = await withClient(db.url, async (c) => (await c.query<{full_name: string}>('select full_name from customers where id <= 6 order by id')).rows.map((r) => r.full_name))
  })
  afterAll(async () => {
    await t?.close()
  })

  it('masks a value the written table runs user code on', () => {
    // The attack did what it meant to: the table's code copied each value into a name.
    expect(landed).toEqual(CASES.filter((k, i) => CASES.findIndex((x) => x.customer === k.customer) === i).map(() => NAME))
    for (const k of CASES) {
      const s = statements.find((x) => x.sql === k.sql)
      expect(s?.outcome, k.sql).toBe('ok')
      expect(s?.params, k.sql).toEqual(k.recorded)
    }
  })
})
