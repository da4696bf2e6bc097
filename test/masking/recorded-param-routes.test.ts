/**
 * Routes by which a value bound into a clean column goes on, in the same statement, into a
 * sensitive one, through the tunnel exactly as `dbgate connect` builds it: the recording kept it in
 * clear, proven by the one use it saw. Attack:
 * - `INSERT … ON CONFLICT DO UPDATE SET full_name = excluded.country`: the value inserted into a
 *   clean column is written into a sensitive one by the same statement;
 * - a writing CTE whose RETURNING hands the value on (`with i as (insert … returning status)
 *   update customers set full_name = i.status …`);
 * - a CTE named like the written table, whose constant columns the target was read as;
 * - an unqualified name that two schemas hold, with a trigger on the one the session's
 *   search_path picks: the written relation was not known as one, so its trigger was not seen.
 */
import {mkdtempSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {serialize} from 'pg-protocol'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {StatementData} from '../../src/audit/events.js'
import {sampleSchemaSql} from '../../src/demo/sample-data.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {recordedStatements} from '../audit/helpers.js'

const NAME = 'Dora Quill'

/** Completed statements where a value bound into a clean column is also written into a sensitive one. */
const ONWARD: {sql: string; values: string[]; recorded: string[]; setup?: string}[] = [
  // ON CONFLICT DO UPDATE: `excluded` is the row the statement proposed, its values the bound ones.
  {sql: "insert into customers (id, full_name, email, country) values (1, 'x', 'x@example.com', $1) on conflict (id) do update set full_name = excluded.country", values: [NAME], recorded: ['[redacted]']},
  {sql: "insert into customers (id, full_name, email, country) values (2, 'x', 'x@example.com', $1) on conflict (id) do update set address = excluded.country || ''", values: [NAME], recorded: ['[masked]']},
  {sql: "insert into customers (id, full_name, email, country) values (3, 'x', 'x@example.com', $1) on conflict (id) do update set (full_name, address) = (excluded.country, 'a')", values: [NAME], recorded: ['[masked]']},
  {sql: "insert into customers as c (id, full_name, email, country) values (4, 'x', 'x@example.com', $1) on conflict (id) do update set address = excluded::text", values: [NAME], recorded: ['[masked]']},
  // A writing CTE hands on what it wrote through RETURNING.
  {sql: "with i as (insert into orders (id, customer_id, status, total_cents, placed_at) values (7001, 1, $1, 1, now()) returning status) update customers set full_name = (select status from i) where id = 5", values: [NAME], recorded: ['[masked]']},
  {sql: 'with u as (update orders set status = $1 where id = 1 returning *) update customers set address = u.status from u where customers.id = 6', values: [NAME], recorded: ['[masked]']},
  {sql: 'with u as (update orders set status = $1 where id = 2 returning orders) update customers set address = u.orders::text from u where customers.id = 7', values: [NAME], recorded: ['[masked]']},
  // A CTE named like the written table: PostgreSQL writes the table, never the CTE.
  {sql: "with customers as (select 9 as id, 'x'::text as full_name) update customers set full_name = $1 where id = 9", values: [NAME], recorded: ['[redacted]']},
  {sql: "with customers as (select 10 as id, 'x'::text as full_name) insert into customers (id, full_name, email) values (10, $1, 'q10@example.com') on conflict (id) do update set full_name = excluded.full_name", values: [NAME], recorded: ['[redacted]']},
  // The name two schemas hold: the session's search_path picks the one whose trigger copies the value.
  {sql: 'insert into notes (id, body) values ($1, $2)', values: ['8', NAME], recorded: ['[masked]', '[masked]'], setup: 'set search_path = s9, public'},
]

/** The same forms where the value goes nowhere but clean columns: still in clear for auditors, through the scanner. */
const KEPT: typeof ONWARD = [
  {sql: 'insert into orders (id, customer_id, status, total_cents, placed_at) values ($1, 1, $2, 1, now()) returning id, status', values: ['7002', 'placed'], recorded: ['7002', 'placed']},
  {sql: 'with u as (update orders set status = $1 where id = 3) select count(*) from orders where status = $2', values: ['paid', 'paid'], recorded: ['paid', 'paid']},
  {sql: 'insert into public.notes (id, body) values ($1, $2)', values: ['9', 'hello'], recorded: ['9', 'hello']},
  // A count is a number the server takes, not proof that it is not a card number: it is scanned.
  {sql: 'select id from orders order by id limit $1 offset $2', values: ['4111111111111111', '2'], recorded: ['**** **** **** 1111', '2']},
]

/** Bound in binary format into a clean place: a card number, which the scanner must see through base64, and a status. */
const BINARY_SQL = 'select id from orders where status = $1'
const BINARY = ['4111 1111 1111 1111', 'paid']

describe('values bound where their proof does not hold, in the recording', () => {
  let db: UpstreamInfo
  let t: PipelineTunnel | undefined
  let statements: StatementData[]
  let landed: string[]

  beforeAll(async () => {
    db = await createTestDatabase('recroutes')
    await withClient(db.url, async (c) => {
      await c.query(sampleSchemaSql())
      await c.query(`create table notes (id int primary key, body text);
        create schema s9;
        create table s9.notes (id int primary key, body text);
        create function s9.copy_body() returns trigger language plpgsql as 'begin update public.customers set full_name = new.body where id = new.id; return new; end';
        create trigger notes_copied before insert on s9.notes for each row execute function s9.copy_body()`)
    })
    const bucketUrl = `file://${mkdtempSync(path.join(tmpdir(), 'dbgate-recroutes-'))}`
    // Masking holds on its own: no guardrail stands in front of it (`SET search_path` is allowed).
    t = await openPipelineTunnel(db, 'policy: none', {top: `bucket: ${bucketUrl}`})
    // Each on a connection of its own, so that no statement's distrust covers another's; the kept
    // first, as code that ran (the trigger) distrusts every connection until the catalog is read.
    for (const k of [...KEPT, ...ONWARD]) {
      const c = await t.client()
      if (k.setup) await c.query(k.setup)
      await c.query(k.sql, k.values)
    }
    // Values in binary format, as `b64:` and their base64: a text type's binary form is its UTF-8 bytes.
    const raw = await t.raw()
    for (const value of BINARY) {
      raw.send(serialize.parse({text: BINARY_SQL}), serialize.bind({values: [Buffer.from(value)]}), serialize.execute({}), serialize.sync())
      await raw.untilReady()
    }
    await t.close()
    t = undefined
    statements = await recordedStatements(bucketUrl)
    landed = await withClient(db.url, async (c) => (await c.query<{v: string}>("select concat_ws(' ', full_name, address) as v from customers where id between 1 and 10 order by id")).rows.map((r) => r.v))
  })
  afterAll(async () => {
    await t?.close()
  })

  const recorded = (sql: string) => statements.find((s) => s.sql === sql)

  it('masks a value that the same statement writes on into a sensitive column', () => {
    // The attack did what it meant to: the value reached a sensitive column.
    expect(landed).toHaveLength(ONWARD.length)
    for (const v of landed) expect(v).toContain(NAME)
    for (const k of ONWARD) {
      const s = recorded(k.sql)
      expect(s?.outcome, k.sql).toBe('ok')
      expect(s?.params, k.sql).toEqual(k.recorded)
    }
  })

  it('keeps a value whose every use is proven clean as the value scanner leaves it', () => {
    for (const k of KEPT) expect(recorded(k.sql)?.params, k.sql).toEqual(k.recorded)
    const binary = statements.filter((s) => s.sql === BINARY_SQL).map((s) => s.params)
    expect(binary).toEqual([['[masked]'], [`b64:${Buffer.from('paid').toString('base64')}`]])
  })
})
