/**
 * The attack families of issue 13 that masking must close by construction, each with siblings:
 * composite values (8), text-executing functions (9), session settings as a side channel (10),
 * values echoed in errors whatever their SQLSTATE (11), phone numbers in free text (12), and what
 * the recordings keep (13). Every case is first run directly against PostgreSQL and shown to reveal
 * seeded values, then through the tunnel exactly as `dbgate connect` builds it, with the policy
 * pack `none` (masking must not lean on guardrails), and every byte a client received is checked:
 * node-postgres over the simple protocol, the extended protocol in text and binary format, COPY,
 * and psql. Finally the signed recordings of all of it are searched for the same values.
 */
import {readdirSync, readFileSync, statSync} from 'node:fs'
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {gunzipSync} from 'node:zlib'
import pg from 'pg'
import {to as copyTo} from 'pg-copy-streams'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {withClient} from '../helpers/pg.js'
import {pgEnv, run} from '../helpers/run.js'
import {leaked, maskingFixture, type MaskingFixture} from './fixture.js'
import {all, recordingRelay, relayedClient, type Seen} from './relay.js'

/** A server file `COPY … TO` writes and `COPY … FROM` reads back, this run's own. */
const SERVER_FILE = path.join(tmpdir(), `dbgate-families-${process.pid}.txt`)

/** Phone numbers only free text holds: no column is named for them. */
const PHONES = ['+44 20 7946 0958', '(555) 123-4567', '+49 30 1234567']

/** An e-mail address only a JSON key holds (built in SQL, so the statement text does not hold it): the scanner must read keys as it reads strings. */
const KEY_EMAIL = 'zed.key@example.net'

interface Case {
  family: string
  /** Run in one session, in order; whatever any of them returns counts. */
  steps: string[]
  /** The last step is a query whose rows can also be copied out. */
  copy?: boolean
}

const CASES: Case[] = [
  // 8: rows, composites, arrays and JSON built from rows
  {family: 'composite', steps: ['select row(c.*) from customers c'], copy: true},
  {family: 'composite', steps: ['select row(c.*)::text from customers c'], copy: true},
  {family: 'composite', steps: ['select row(c.id, c.*) from customers c'], copy: true},
  {family: 'composite', steps: ['select to_json(row(c.*)) from customers c'], copy: true},
  {family: 'composite', steps: ["select json_build_object('k', row(c.*)) from customers c"], copy: true},
  {family: 'composite', steps: ["select jsonb_build_object('k', row(c.*), 'n', 1)::text from customers c"], copy: true},
  {family: 'composite', steps: ['select array[row(c.*)] from customers c'], copy: true},
  {family: 'composite', steps: ['select to_json(array_agg(row(c.*))) from customers c'], copy: true},
  {family: 'composite', steps: ['select json_agg(row(full_name, phone, address)) from customers'], copy: true},
  {family: 'composite', steps: ["select json_build_object('who', row(full_name, row(phone, address))) from customers"], copy: true},
  {family: 'composite', steps: ['select * from json_to_record((select row_to_json(row(c.*)) from customers c limit 1)) as x(f2 text, f4 text, f7 text)']},
  // a field chosen by a name several fields share: the server takes the last (jsonb) or its own pick
  {family: 'composite', steps: ['select row_to_json(x)->>\'a\' from (select 1 as a, full_name as a from customers) x'], copy: true},
  {family: 'composite', steps: ['select to_jsonb(x)->>\'a\' from (select 1 as a, address as a from customers) x'], copy: true},
  {family: 'composite', steps: ["select jsonb_build_object('k', jsonb_build_object('id', 1), 'k', jsonb_build_object('id', full_name))->'k'->>'id' from customers"], copy: true},
  {family: 'composite', steps: ["select json_build_object('id', 1, 'id', address)->>'id' from customers"], copy: true},
  // 9: functions that run SQL given as text, or read what the statement never names
  {family: 'text-executing', steps: ["select * from ts_stat('select to_tsvector(''simple'', email) from customers')"], copy: true},
  {family: 'text-executing', steps: ["select ts_stat('select to_tsvector(''simple'', email) from customers')::text"], copy: true},
  {family: 'text-executing', steps: ["select (select string_agg(word, ',') from ts_stat('select to_tsvector(''simple'', email) from customers'))"], copy: true},
  {family: 'text-executing', steps: ["select * from ts_stat('select quote_literal(full_name)::tsvector from customers')"], copy: true},
  {family: 'text-executing', steps: ["select ts_rewrite('a'::tsquery, 'select ''a''::tsquery, quote_literal(address)::tsquery from customers where id = 1')"], copy: true},
  {family: 'text-executing', steps: ["select query_to_xml('select full_name, phone from customers', true, false, '')"], copy: true},
  {family: 'text-executing', steps: ["select pg_catalog.table_to_xml('customers', true, false, '')"], copy: true},
  {family: 'text-executing', steps: ['begin', 'declare leak_cur cursor for select full_name, ssn from customers', "select cursor_to_xml('leak_cur', 50, false, false, '')"]},
  // 10: session settings written with sensitive values and read back
  {family: 'settings', steps: ["select set_config('x.leak', (select email from customers where id = 1), false)", 'show x.leak']},
  {family: 'settings', steps: ["select set_config('x.leak', email, false) from customers where id = 2", "select current_setting('x.leak')"]},
  {family: 'settings', steps: ["select set_config('x.leak', v, false) from (select full_name v from customers where id = 3) s", "select setting from pg_settings where name = 'x.leak'"]},
  {family: 'settings', steps: ["select set_config('application_name', full_name, false) from customers where id = 4", 'select application_name from pg_stat_activity where pid = pg_backend_pid()']},
  {family: 'settings', steps: ["select set_config('search_path', email, false) from customers where id = 5", 'show search_path']},
  {family: 'settings', steps: ["do $$ begin perform set_config('x.unseen', (select ssn from customers where id = 6), false); end $$", 'show x.unseen']},
  {family: 'settings', steps: ["do $$ begin perform set_config('x.unseen', (select phone from customers where id = 7), false); end $$", "select current_setting('x.unseen')"]},
  {family: 'settings', steps: ["do $$ begin perform set_config('application_name', (select email from customers where id = 8), false); end $$", "select setting from pg_settings where name = 'application_name'", 'show all']},
  {family: 'settings', steps: ["do $$ begin perform set_config('search_path', (select full_name from customers where id = 11), false); end $$", 'select 1']},
  {family: 'settings', steps: ["do $$ begin perform set_config('application_name', (select full_name from customers where id = 12), false); end $$", 'select application_name from pg_stat_activity where pid = pg_backend_pid()']},
  {family: 'settings', steps: ["do $$ begin perform set_config('application_name', (select address from customers where id = 13), false); end $$", 'select pid, application_name, state from pg_stat_activity']},
  {family: 'settings', steps: ["select query_to_xml('select set_config(''x.viaxml'', email, false) from customers where id = 9', true, false, '')", "select current_setting('x.viaxml')"]},
  {family: 'settings', steps: ["select set_config('x.leak', email, false) from customers where id = 10; select current_setting('x.leak')"]},
  // 11: values echoed in errors outside SQLSTATE class 22
  {family: 'errors', steps: [`select ('"' || full_name || '"')::regclass from customers`]},
  {family: 'errors', steps: ['select email::regclass from customers']},
  {family: 'errors', steps: [`select nextval('"' || full_name || '"') from customers`]},
  {family: 'errors', steps: ['select current_setting(full_name) from customers']},
  {family: 'errors', steps: ["select has_table_privilege(full_name, 'customers', 'select') from customers"]},
  {family: 'errors', steps: [`select ('"' || full_name || '"')::regtype from customers`]},
  {family: 'errors', steps: ['select to_tsquery(address) from customers']},
  {family: 'errors', steps: ['select xmlparse(document full_name) from customers']},
  {family: 'errors', steps: ['select ssn::int from customers']},
  {family: 'errors', steps: [`select ('x" ' || full_name || ' "y')::int from customers`]},
  {family: 'errors', steps: ['explain analyze select current_setting(address) from customers']},
  // DDL reads the rows of the tables it names, and its errors echo them; so do partition routing and index builds
  {family: 'errors', steps: ['create index on customers ((full_name::int))']},
  {family: 'errors', steps: ['alter table customers add constraint k_e check (address::int > 0)']},
  {family: 'errors', steps: ['drop table if exists dup_e', 'create table dup_e as select full_name as nm from customers union all select full_name from customers', 'create unique index on dup_e (nm)']},
  {family: 'errors', steps: ['drop table if exists dup_f; create table dup_f as select address as a from customers union all select address from customers; create unique index on dup_f (a)']},
  {family: 'errors', steps: ['drop table if exists pk_e cascade', 'create table pk_e (nm text) partition by list (nm)', "create table pk_e1 partition of pk_e for values in ('x')", 'insert into pk_e select full_name from customers']},
  // ordered-set aggregates: WITHIN GROUP (ORDER BY …) is the aggregated input, not an ordering
  {family: 'ordered-set aggregates', steps: ['select mode() within group (order by full_name) from customers'], copy: true},
  {family: 'ordered-set aggregates', steps: ['select percentile_disc(0.5) within group (order by address) from customers'], copy: true},
  {family: 'ordered-set aggregates', steps: ['select percentile_disc(array[0.1, 0.5, 0.9]) within group (order by full_name) as names from customers'], copy: true},
  {family: 'ordered-set aggregates', steps: ['select percentile_disc(0.5) within group (order by birth_date) from customers'], copy: true},
  {family: 'ordered-set aggregates', steps: ['select country, mode() within group (order by phone) from customers group by country'], copy: true},
  // sensitive values as JSON object keys: a key is a value too
  {family: 'json keys', steps: ['select jsonb_object_agg(full_name, 1) from customers'], copy: true},
  {family: 'json keys', steps: ['select json_object_agg(address, id) from customers'], copy: true},
  {family: 'json keys', steps: ['select jsonb_build_object(full_name, 1) from customers'], copy: true},
  {family: 'json keys', steps: ['select json_build_object(address, 1) from customers'], copy: true},
  {family: 'json keys', steps: ["select json_object(array[full_name, 'x']) from customers"], copy: true},
  {family: 'json keys', steps: ['select jsonb_object(array_agg(address), array_agg(id::text)) from customers'], copy: true},
  {family: 'json keys', steps: ['select json_object(full_name : 1) from customers'], copy: true},
  {family: 'json keys', steps: ['select json_objectagg(address : 1) from customers'], copy: true},
  {family: 'json keys', steps: ["select jsonb_set('{}', array[full_name], '1') from customers"], copy: true},
  {family: 'json keys', steps: ["select jsonb_insert('{}', array[address], '1') from customers"], copy: true},
  {family: 'json keys', steps: ["select '{}'::jsonb || jsonb_build_object(address, 2) from customers"], copy: true},
  {family: 'json keys', steps: ["select jsonb_build_object('k', jsonb_object_agg(full_name, 1)) from customers"], copy: true},
  {family: 'json keys', steps: ["select to_jsonb(c) - 'email' from customers c"], copy: true},
  {family: 'json keys', steps: [`select body::jsonb from (select '{"${KEY_EMAIL.replace('@', `' || chr(64) || '`)}": 1}' as body) s, customers limit 1`], copy: true},
  // a sensitive column renamed to a name the dictionary does not know (or a table out of a glob)
  {family: 'renamed columns', steps: ['alter table customers rename column full_name to nm', 'select nm from customers', 'alter table customers rename column nm to full_name']},
  {family: 'renamed columns', steps: ['alter table customers rename column address to a1', 'select * from customers', 'alter table customers rename column a1 to address']},
  {family: 'renamed columns', steps: ['alter table customers rename column full_name to nm; select nm from customers; alter table customers rename column nm to full_name']},
  {family: 'renamed columns', steps: ["do $$ begin execute 'al' || 'ter table customers rename column address to zz'; end $$", 'select zz from customers', 'alter table customers rename column zz to address']},
  {family: 'renamed columns', steps: ['alter table customers alter column birth_date type text', 'alter table customers rename column birth_date to bd', 'select bd from customers', 'alter table customers rename column bd to birth_date', 'alter table customers alter column birth_date type date using birth_date::date']},
  // a table created from a query, renamed or moved before the catalog read it (in one text, or in a transaction)
  {family: 'renamed columns', steps: ['drop table if exists rn_a, rn_a2', 'create table rn_a as select full_name as nm from customers; alter table rn_a rename to rn_a2', 'select nm from rn_a2']},
  {family: 'renamed columns', steps: ['drop table if exists rn_b, rn_b2', 'begin', 'create table rn_b as select address as nm from customers', 'alter table rn_b rename to rn_b2', 'commit', 'select nm from rn_b2']},
  {family: 'renamed columns', steps: ['drop table if exists rn_c', 'begin', 'create table rn_c as select full_name as nm from customers', 'alter table rn_c rename column nm to zz', 'commit', 'select zz from rn_c']},
  {family: 'renamed columns', steps: ['drop schema if exists rn_s cascade', 'drop table if exists public.rn_d', 'create schema rn_s', 'begin', 'create table public.rn_d as select address as nm from customers', 'alter table public.rn_d set schema rn_s', 'commit', 'select nm from rn_s.rn_d']},
  // name fields of a RAISEd error (schema, table, column, constraint, data type) set to values
  {family: 'raised name fields', steps: ["do $$ begin raise exception 'x' using column = (select full_name from customers where id = 1), table = (select address from customers where id = 1); end $$"]},
  {family: 'raised name fields', steps: ["do $$ begin raise exception 'x' using schema = (select address from customers where id = 2), constraint = (select full_name from customers where id = 3), datatype = (select full_name from customers where id = 4); end $$"]},
  {family: 'raised name fields', steps: ["do $$ begin raise notice 'x' using column = (select full_name from customers where id = 5); end $$"]},
  {family: 'raised name fields', steps: ["do $$ begin perform 1 / 0; exception when others then raise exception 'e' using column = (select address from customers where id = 6); end $$"]},
  {family: 'raised name fields', steps: ["do $$ begin raise exception 'column \"%\" of relation \"customers\"', 'x' using column = (select full_name from customers where id = 7); end $$"]},
  // notifications this session's own unseen code sends: no pg_notify call the analysis could refuse
  {family: 'own notifications', steps: ['listen n1', "do $$ begin perform pg_notify('n1', (select string_agg(full_name, ',') from customers)); end $$"]},
  {family: 'own notifications', steps: ['listen n2', "do $$ begin execute 'notify n2, ' || quote_literal((select string_agg(address, ';') from customers)); end $$"]},
  {family: 'own notifications', steps: ['listen n3', "do $$ begin perform pg_notify('n3', json_build_object('label', (select full_name from customers where id = 1))::text); end $$"]},
  {family: 'own notifications', steps: ['listen n4', "do $$ begin perform pg_notify('n4', json_build_object((select address from customers where id = 2), 1)::text); end $$"]},
  {family: 'own notifications', steps: ['listen n5', "do $$ begin perform pg_notify('n5', json_build_array((select full_name from customers where id = 3), 1)::text); end $$"]},
  {family: 'own notifications', steps: ['listen n6', 'begin', "do $$ begin perform pg_notify('n6', (select full_name from customers where id = 4)); end $$", 'select 1', 'commit']},
  // generated columns computed from sensitive ones, under names the dictionary does not know
  {family: 'generated columns', steps: ['alter table customers add column nm text generated always as (full_name) stored', 'select nm from customers', 'alter table customers drop column nm']},
  {family: 'generated columns', steps: ["alter table customers add column a2 text generated always as (upper(address) || '') stored", 'select * from customers', 'alter table customers drop column a2']},
  {family: 'generated columns', steps: ["alter table customers add column both_ text generated always as (full_name || ' ' || coalesce(phone, '')) virtual", 'select both_ from customers', 'alter table customers drop column both_']},
  {family: 'generated columns', steps: ['alter table customers add column nm text generated always as (full_name) stored; select nm from customers; alter table customers drop column nm']},
  // the session's cursors, prepared statements and channels, named or written by unseen code
  {family: 'session state', steps: ['begin', "do $$ declare c refcursor := 'leakc'; begin open c for execute format('select %L as x', (select string_agg(full_name, ',') from customers)); end $$", 'select name, statement from pg_cursors', 'commit']},
  {family: 'session state', steps: ["do $$ begin execute 'listen ' || quote_ident((select full_name from customers where id = 1)); end $$", 'select pg_listening_channels()']},
  {family: 'session state', steps: ["do $$ begin execute format('prepare pq as select %L as x', (select address from customers where id = 2)); end $$", 'select name, statement from pg_prepared_statements']},
  {family: 'session state', steps: ["do $$ begin execute format('prepare %I as select 1', (select full_name from customers where id = 3)); end $$", 'select * from pg_prepared_statement()']},
  {family: 'session state', steps: ["do $$ begin execute format('prepare pm as select %L as x', (select address from customers where id = 2)); end $$", 'select ident from pg_backend_memory_contexts where ident is not null', 'deallocate pm']},
  {family: 'session state', steps: ["do $$ begin execute format('prepare pn as select %L as x', (select full_name from customers where id = 4)); end $$", 'select pg_get_backend_memory_contexts()', 'deallocate pn']},
  // 12: phone numbers in free text
  {family: 'free-text phones', steps: ['select body from notes where id >= 5'], copy: true},
  {family: 'free-text phones', steps: ['select payload::text from events where id = 2'], copy: true},
  {family: 'free-text phones', steps: ["select payload->>'note' from events where id = 2"], copy: true},
  // values written to a server file (or printed by a program) and copied back into a clean column
  {family: 'server files', steps: ['create table if not exists memo_f (note text)', 'truncate memo_f', `copy (select full_name || ' / ' || address from customers) to '${SERVER_FILE}'`, `copy memo_f (note) from '${SERVER_FILE}'`, 'select note from memo_f']},
  {family: 'server files', steps: ['create table if not exists memo_p (note text, n int)', 'truncate memo_p', `copy (select full_name, 1 from customers) to '${SERVER_FILE}'`, `copy memo_p from program 'cat ${SERVER_FILE}'`, 'select * from memo_p']},
  {family: 'server files', steps: [`copy (select address from customers) to '${SERVER_FILE}'; drop table if exists memo_t; create table memo_t (note text); copy memo_t from '${SERVER_FILE}'; select note from memo_t`]},
  // a column DDL rewrites from others, and a table whose rows include those of other tables
  {family: 'rewritten and inherited columns', steps: ['drop table if exists alt_c', 'create table alt_c as table customers', "alter table alt_c alter column country type text using full_name || ''", 'select country from alt_c']},
  {family: 'rewritten and inherited columns', steps: ['drop table if exists inh_p cascade', 'create table inh_p (id int, nm text)', 'create table inh_c () inherits (inh_p)', 'insert into inh_c select id, full_name from customers', 'select nm from inh_p', 'select * from inh_p']},
  {family: 'rewritten and inherited columns', steps: ['drop table if exists inh_q cascade', 'drop table if exists inh_r', 'create table inh_r as table customers', 'alter table inh_r rename column address to a6', 'create table inh_q (a6 text)', 'alter table inh_r inherit inh_q', 'select a6 from inh_q']},
  {family: 'rewritten and inherited columns', steps: ['drop table if exists prt_q cascade', 'create table prt_q (id int, nm text) partition by range (id)', 'create table prt_q1 partition of prt_q for values from (0) to (1000)', 'insert into prt_q select id, full_name from customers', 'select nm from prt_q1']},
  {family: 'rewritten and inherited columns', steps: ['drop table if exists inh_s cascade', 'create table inh_s (id int, nm text)', 'create table inh_s1 () inherits (inh_s)', "insert into inh_s1 select id, 'x' from customers", 'update inh_s set nm = c.address from customers c where c.id = inh_s.id', 'select nm from inh_s1']},
  {family: 'rewritten and inherited columns', steps: ['drop table if exists prt_p cascade', 'drop table if exists prt_c', 'create table prt_c as select id, full_name as nm from customers', 'create table prt_p (id int, nm text) partition by range (id)', 'alter table prt_p attach partition prt_c for values from (0) to (1000)', 'select nm from prt_p']},
  // writes through an updatable view land in its base table
  {family: 'writes through views', steps: ['drop table if exists wv_b cascade', 'create table wv_b (id int, note text)', 'create view wv_v as select * from wv_b', 'insert into wv_v select id, address from customers', 'select note from wv_b']},
  {family: 'writes through views', steps: ['drop table if exists wv_c cascade', 'create table wv_c as select id, country from customers', 'create view wv_w as select id, country as c from wv_c', 'create view wv_x as select * from wv_w', 'update wv_x set c = cu.full_name from customers cu where cu.id = wv_x.id', 'select country from wv_c']},
  // free text under types the scanner did not read: any type not of a category known to hold no text
  {family: 'free text in other types', steps: ['select body::refcursor from notes'], copy: true},
  {family: 'free text in other types', steps: ['select array_agg(body::refcursor) from notes'], copy: true},
  {family: 'free text in other types', steps: ["select to_tsvector('simple', body) from notes"], copy: true},
  {family: 'free text in other types', steps: ["select plainto_tsquery('simple', body) from notes"], copy: true},
  {family: 'free text in other types', steps: [`select ('"' || replace(body, '"', '') || '"')::jsonpath from notes`], copy: true},
  {family: 'free text in other types', steps: ['select (body::refcursor, 1)::text::refcursor from notes'], copy: true},
]

/** Every file under `dir`, gunzipped where needed. */
function filesUnder(dir: string): Buffer[] {
  const out: Buffer[] = []
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name)
    if (statSync(p).isDirectory()) out.push(...filesUnder(p))
    else {
      const raw = readFileSync(p)
      out.push(raw[0] === 0x1f && raw[1] === 0x8b ? gunzipSync(raw) : raw)
    }
  }
  return out
}

describe('leak families: masking by proof, through the tunnel dbgate connect builds', () => {
  let fx: MaskingFixture
  let secrets: string[]
  let tunnel: PipelineTunnel & {env: NodeJS.ProcessEnv}
  let relay: Awaited<ReturnType<typeof recordingRelay>>
  let bucketDir: string

  beforeAll(async () => {
    fx = await maskingFixture()
    await withClient(fx.db.url, (c) =>
      c.query(`insert into notes values (5, 'reach me on ${PHONES[0]} or ${PHONES[1]} after six'), (6, 'order 12345678901 shipped 2026-10-01 12:00:00, paid 1,234.56');
        insert into events values (2, '{"kind": "callback", "note": "call ${PHONES[2]}"}')`),
    )
    secrets = [...fx.secrets, ...PHONES, KEY_EMAIL]
    bucketDir = mkdtempSync(path.join(tmpdir(), 'dbgate-families-'))
    tunnel = await openPipelineTunnel(fx.db, 'policy: none', {top: `bucket: file://${bucketDir}`})
    relay = await recordingRelay(tunnel.info.port)
  })

  afterAll(async () => {
    await relay?.close()
    await tunnel?.close().catch(() => {})
    await fx?.close()
    rmSync(SERVER_FILE, {force: true})
  })

  const client = (seen: Seen, extra: Partial<pg.ClientConfig> = {}): Promise<pg.Client> => relayedClient(tunnel.info.url, relay, seen, extra)

  /** Runs a case's steps in one session; what came back (rows, errors, notices) as text. */
  async function runSteps(c: pg.Client, steps: string[], extended: boolean): Promise<string> {
    const out: string[] = []
    for (const sql of steps) {
      try {
        const r = await c.query(extended ? ({text: sql, queryMode: 'extended'} as pg.QueryConfig) : sql)
        out.push(JSON.stringify(Array.isArray(r) ? r.map((x) => x.rows) : r.rows))
      } catch (error) {
        out.push(JSON.stringify(error), String(error))
      }
    }
    return out.join('\n')
  }

  it('has no vacuous case: each reveals seeded values over a direct connection', async () => {
    const silent: string[] = []
    for (const k of CASES) {
      const c = new pg.Client({connectionString: fx.db.url})
      const notices: string[] = []
      c.on('notice', (n) => notices.push(JSON.stringify(n)))
      c.on('notification', (n) => notices.push(JSON.stringify(n)))
      await c.connect()
      try {
        const got = (await runSteps(c, k.steps, false)) + notices.join('\n')
        if (leaked(got, secrets).length === 0) silent.push(k.steps.join('; '))
      } finally {
        await c.end()
      }
    }
    expect(silent).toEqual([])
  })

  it.each([
    ['the simple protocol', false, false],
    ['the extended protocol, text format', true, false],
    ['the extended protocol, binary format', true, true],
  ])('masks every case over %s', async (_name, extended, binary) => {
    const failures: string[] = []
    for (const k of CASES) {
      // One statement per Parse: a text of several goes through the simple protocol only.
      if (extended && k.steps.some((s) => s.includes('; '))) continue
      const seen: Seen = {bytes: [], strings: []}
      const c = await client(seen, {binary} as Partial<pg.ClientConfig>)
      const got = await runSteps(c, k.steps, extended)
      await c.end()
      const found = leaked(Buffer.concat([all(seen), Buffer.from(got)]), secrets)
      if (found.length > 0) failures.push(`[${k.family}] ${k.steps.join('; ')}\n    leaked: ${found.slice(0, 3).join(' | ')}`)
    }
    expect(failures).toEqual([])
  })

  it('masks every copyable case in COPY … TO STDOUT, text and CSV', async () => {
    const failures: string[] = []
    for (const k of CASES.filter((x) => x.copy)) {
      for (const format of ['', ' with (format csv)']) {
        const seen: Seen = {bytes: [], strings: []}
        const c = await client(seen)
        const chunks: Buffer[] = []
        const sql = `copy (${k.steps.at(-1)}) to stdout${format}`
        await new Promise<void>((resolve) => {
          const stream = c.query(copyTo(sql))
          stream.on('data', (b: Buffer) => chunks.push(b))
          stream.on('end', () => resolve())
          stream.on('error', (e) => {
            seen.strings.push(String(e))
            resolve()
          })
        })
        await c.end()
        const found = leaked(Buffer.concat([all(seen), ...chunks]), secrets)
        if (found.length > 0) failures.push(`[${k.family}] ${sql}\n    leaked: ${found.slice(0, 3).join(' | ')}`)
      }
    }
    expect(failures).toEqual([])
  })

  it('masks what psql prints for every case', async () => {
    const env = pgEnv(tunnel.info.port, tunnel.info.password, fx.db.database)
    const script = CASES.map((k) => `${k.steps.join(';\n')};\n${k.steps[0] === 'begin' ? 'rollback;\n' : ''}`).join('\n')
    const out = await run('psql', ['-X', '-v', 'ON_ERROR_STOP=0', '-v', 'VERBOSITY=verbose', '-f', '-'], {env, input: script})
    // The cases ran: masked rows and the tunnel's refusals are there.
    expect(out.stdout).toMatch(/\[redacted\]|\[masked\]/)
    expect(out.stderr).toMatch(/masking cannot follow this query|set_config\(\) would store/)
    expect(leaked(out.stdout + out.stderr, secrets)).toEqual([])
  })

  it('keeps the payloads of a session that ran no code the analysis cannot see into', async () => {
    const c = await tunnel.client()
    const got: string[] = []
    c.on('notification', (n) => got.push(n.payload ?? ''))
    await c.query('listen plain')
    await c.query("notify plain, 'order 7 shipped'")
    await c.query(`select pg_notify('plain', json_build_object('id', id, 'status', status)::text) from orders where id = 1`)
    await c.query('select 1')
    expect(got[0]).toBe('order 7 shipped')
    expect(JSON.parse(got[1]!)).toMatchObject({id: 1, status: expect.not.stringMatching(/redacted|masked/)})
    await c.end()
  })

  it('keeps ordinary free text and its numbers, dates and amounts as they are', async () => {
    const c = await tunnel.client()
    const r = await c.query('select body from notes where id = 6')
    expect(r.rows[0].body).toBe('order 12345678901 shipped 2026-10-01 12:00:00, paid 1,234.56')
  })

  it('refuses to store untraced values in settings, and says why', async () => {
    const c = await tunnel.client()
    const err = await c.query("select set_config('x.leak', email, false) from customers where id = 1").then(
      () => undefined,
      (e: Error & {code?: string}) => e,
    )
    expect(err?.code).toBe('42501')
    expect(err?.message).toMatch(/set_config\(\) would store values derived from sensitive or untraceable data in a setting/)
    // Clean values are stored and read back as usual.
    await c.query("select set_config('x.ok', 'plain value', false)")
    expect((await c.query('show x.ok')).rows[0]).toEqual({'x.ok': 'plain value'})
  })

  it('records nothing the client was not shown: previews, errors and parameters', async () => {
    const c = await tunnel.client()
    await c.query('select row(c.*) from customers c')
    await c.query('select current_setting(full_name) from customers').catch(() => {})
    await c.query(`select ('"' || full_name || '"')::regclass from customers`).catch(() => {})
    await c.query('select $1::text as note', [`call ${PHONES[0]}`])
    await tunnel.close()
    const files = [...filesUnder(bucketDir), ...filesUnder(tunnel.env.XDG_STATE_HOME!)]
    const recorded = Buffer.concat(files)
    // The recordings hold these statements (with masked previews), and none of the values.
    expect(recorded.includes(Buffer.from('current_setting(full_name)'))).toBe(true)
    expect(recorded.includes(Buffer.from('"preview"'))).toBe(true)
    expect(leaked(recorded, secrets)).toEqual([])
  })
})
