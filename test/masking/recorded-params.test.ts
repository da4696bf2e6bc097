/**
 * Bind parameters in the recording, through the tunnel exactly as `dbgate connect` builds it. A
 * parameter is kept in clear only with proof of clean origin, and for a parameter the proof is
 * where it goes: every use a comparison with, an assignment to or an insertion into a clean
 * column, or a row count (LIMIT, OFFSET). Attack: bind a name into a sensitive column, or anywhere
 * the analysis cannot follow (`select $1`, a function's argument), and read it back in clear from
 * the recording, which only the value scanner (a deny-list of patterns) used to mask.
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
const EMAIL = 'dora.quill@example.com'
const SSN = '900-12-3456'
/** What must never be read in clear anywhere in the recorded parameters. */
const CLEAR = [NAME, 'Quill', EMAIL, 'dora.quill', SSN]

/** Each statement with its values (extended protocol, unnamed statement) and what the recording keeps of them. */
const CASES: {sql: string; values: (string | null)[]; recorded: (string | null)[]}[] = [
  // INSERT VALUES: each value by the column its position names, with that column's strategy.
  {sql: 'insert into customers (id, full_name, email, ssn) values ($1, $2, $3, $4)', values: ['901', NAME, EMAIL, SSN], recorded: ['901', '[redacted]', 'd***@example.com', '***-**-3456']},
  {sql: 'insert into customers values ($1::int, $2, $3)', values: ['902', NAME, 'dora.quill2@example.com'], recorded: ['902', '[redacted]', 'd***@example.com']},
  {sql: 'insert into customers (id, full_name, email) values ($1, $2, $3), (904, $4, $5)', values: ['903', NAME, 'dora.quill3@example.com', NAME, 'dora.quill4@example.com'], recorded: ['903', '[redacted]', 'd***@example.com', '[redacted]', 'd***@example.com']},
  // UPDATE SET, and ON CONFLICT DO UPDATE SET.
  {sql: 'update customers set full_name = $1 where id = $2', values: [NAME, '901'], recorded: ['[redacted]', '901']},
  {sql: 'insert into customers (id, full_name, email) values ($1, $2, $3) on conflict (id) do update set address = $4', values: ['901', NAME, 'dora.quill5@example.com', NAME], recorded: ['901', '[redacted]', 'd***@example.com', '[redacted]']},
  // WHERE: =, IN, ANY, either side.
  {sql: 'select id from customers where full_name = $1', values: [NAME], recorded: ['[redacted]']},
  {sql: 'select id from customers c where $1 = c.full_name', values: [NAME], recorded: ['[redacted]']},
  {sql: 'select id from customers where full_name in ($1, $2)', values: [NAME, 'Ada Quill'], recorded: ['[redacted]', '[redacted]']},
  {sql: 'select id from customers where full_name = any($1)', values: [`{"${NAME}"}`], recorded: ['[redacted]']},
  {sql: 'select id from customers where ssn <> $1', values: [SSN], recorded: ['***-**-3456']},
  // Places the analysis cannot follow: masked whatever they are.
  {sql: 'select $1::text as n', values: [NAME], recorded: ['[masked]']},
  {sql: 'select id from customers where lower(full_name) = $1', values: [NAME], recorded: ['[masked]']},
  {sql: 'select id from orders where status = upper($1)', values: [NAME], recorded: ['[masked]']},
  {sql: 'select id, $2::text from orders where status = $1', values: ['paid', NAME], recorded: ['paid', '[masked]']},
  {sql: "select id from orders where status = $1 or status = $1 || ''", values: [NAME], recorded: ['[masked]']},
  {sql: 'select id from customers where email = $1 or full_name = $1', values: [NAME], recorded: ['[masked]']},
  {sql: 'select c.id from customers c join orders o on o.customer_id = c.id where o.status = $1 or c.full_name = $1', values: [NAME], recorded: ['[redacted]']},
  // A value of a type whose input runs user code (a domain's constraints), in a cast or a column.
  {sql: 'insert into labelled (id, label) values ($1, $2)', values: ['1', NAME], recorded: ['1', '[masked]']},
  {sql: 'select id from labelled where label = $1', values: [NAME], recorded: ['[masked]']},
  {sql: 'select id from orders where status = $1::checked_text', values: [NAME], recorded: ['[masked]']},
  // A statement that failed may have failed on the value: it never reached the clean column.
  {sql: 'select id from orders where id = $1', values: [NAME], recorded: ['[masked]']},
  {sql: 'insert into orders (id, customer_id, status, total_cents, placed_at) values ($1::int, $2, $3, $4, $5)', values: ['9002', '99999', NAME, '1', '2026-10-01'], recorded: ['[masked]', '[masked]', '[masked]', '[masked]', '[masked]']},
  // A count that is not a number (the server refuses it) is not shown.
  {sql: 'select id from orders limit $1', values: [NAME], recorded: ['[masked]']},
  // Clean places stay readable for auditors.
  {sql: 'select id from customers where id = $1', values: ['7'], recorded: ['7']},
  {sql: 'select id, status from orders where status = $1 and customer_id in ($2, $3) order by id limit $4 offset $5', values: ['paid', '1', '2', '5', '0'], recorded: ['paid', '1', '2', '5', '0']},
  {sql: 'update orders set status = $1 where id = $2', values: ['shipped', '1'], recorded: ['shipped', '1']},
  {sql: 'insert into orders (id, customer_id, status, total_cents, placed_at) values ($1, $2, $3, $4, $5)', values: ['9001', '1', 'placed', '1200', '2026-10-01 12:00:00+00'], recorded: ['9001', '1', 'placed', '1200', '2026-10-01 12:00:00+00']},
  {sql: 'select o.id from orders o join customers c on c.id = o.customer_id where c.id = any($1)', values: ['{1,2}'], recorded: ['{1,2}']},
]

/**
 * Written where a trigger or rule runs code of its own (the relation, a partition, a view), which
 * may copy a value anywhere. Each on a connection of its own: code the analysis cannot see into
 * ran, so until the catalog is read again nothing on that connection is proven (names distrusted),
 * not even `id = $2`.
 */
const CODE_CASES: typeof CASES = [
  {sql: 'insert into tagged (id, label) values ($1, $2)', values: ['1', NAME], recorded: ['[masked]', '[masked]']},
  {sql: 'update tagged set label = $1 where id = $2', values: [NAME, '1'], recorded: ['[masked]', '[masked]']},
  {sql: 'insert into parted (id, label) values ($1, $2)', values: ['1', NAME], recorded: ['[masked]', '[masked]']},
  {sql: 'insert into order_statuses (id, status) values ($1, $2)', values: ['1', NAME], recorded: ['[masked]', '[masked]']},
]

describe('bind parameters in the recording', () => {
  let db: UpstreamInfo
  let t: PipelineTunnel | undefined
  let statements: StatementData[]

  beforeAll(async () => {
    db = await createTestDatabase('recparams')
    await withClient(db.url, async (c) => {
      await c.query(sampleSchemaSql())
      await c.query(`create table tagged (id int primary key, label text);
        create function keep_label() returns trigger language plpgsql as 'begin return new; end';
        create trigger tagged_kept before insert or update on tagged for each row execute function keep_label();
        create table parted (id int, label text) partition by list (id);
        create table parted_1 partition of parted for values in (1);
        create trigger parted_kept before insert on parted_1 for each row execute function keep_label();
        create view order_statuses as select id, status from orders;
        create domain checked_text as text check (length(value) < 100);
        create table labelled (id int primary key, label checked_text)`)
    })
    const bucketUrl = `file://${mkdtempSync(path.join(tmpdir(), 'dbgate-recparams-'))}`
    t = await openPipelineTunnel(db, '', {top: `bucket: ${bucketUrl}`})
    const c = await t.client()
    for (const k of CASES) await c.query(k.sql, k.values).catch(() => undefined)
    for (const k of CODE_CASES) {
      const own = await t.client()
      await own.query(k.sql, k.values).catch(() => undefined)
    }
    // A named statement, bound twice.
    for (const id of ['905', '906']) await c.query({name: 'add_customer', text: 'insert into customers (id, full_name, email) values ($1, $2, $3)', values: [id, NAME, `dora.quill${id}@example.com`]})
    // A statement made by SQL PREPARE (simple protocol), bound through the extended protocol.
    const raw = await t.raw()
    for (const text of ['prepare find_customer(text) as select id from customers where full_name = $1', 'prepare count_orders(text, int) as select count(*) from orders where status = $1 limit $2']) {
      raw.send(serialize.query(text))
      await raw.untilReady()
    }
    raw.send(
      serialize.bind({statement: 'find_customer', values: [NAME]}),
      serialize.execute({}),
      serialize.bind({statement: 'count_orders', values: ['paid', '3']}),
      serialize.execute({}),
      serialize.sync(),
    )
    await raw.untilReady()
    await t.close()
    t = undefined
    statements = await recordedStatements(bucketUrl)
  })
  afterAll(async () => {
    await t?.close()
  })

  const paramsOf = (sql: string) => statements.find((s) => s.sql === sql)?.params

  it('masks a value bound into a sensitive column with that column strategy, and one bound anywhere unproven', () => {
    for (const k of [...CASES, ...CODE_CASES]) expect(paramsOf(k.sql), k.sql).toEqual(k.recorded)
  })

  it('masks named statements and statements made by PREPARE alike', () => {
    const named = statements.filter((s) => s.statementName === 'add_customer')
    expect(named.map((s) => s.params)).toEqual([
      ['905', '[redacted]', 'd***@example.com'],
      ['906', '[redacted]', 'd***@example.com'],
    ])
    const bound = statements.filter((s) => s.sql.startsWith('prepare ') && s.params)
    expect(bound.map((s) => s.params)).toEqual([['[redacted]'], ['paid', '3']])
  })

  it('never records a sensitive value in clear', () => {
    const recorded = JSON.stringify(statements.map((s) => s.params ?? null))
    for (const v of CLEAR) expect(recorded).not.toContain(v)
  })
})
