/**
 * The end-to-end leak corpus: real PostgreSQL, a real tunnel with the masking filter, real clients
 * (node-postgres in text and binary format, pg-copy-streams, psql). Every byte a client received is
 * collected, and the test fails if any seeded clear value appears in it.
 */
import pg from 'pg'
import {to as copyTo} from 'pg-copy-streams'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {createMaskingFilterFactory, type MaskingFilter} from '../../src/masking/filter.js'
import {formatMaskedColumn} from '../../src/masking/plan.js'
import type {ResultFilterFactory, StatementHook} from '../../src/proxy/seam.js'
import {pgEnv, run} from '../helpers/run.js'
import {startTunnel, type TestTunnel} from '../helpers/tunnel.js'
import {leaked, maskingFixture, NO_CONFIG, type MaskingFixture} from './fixture.js'
import {all, recordingRelay, relayedClient, type Seen} from './relay.js'

/** Queries that defeat column-name or content-regex masking, each run through the tunnel. */
const CORPUS: string[] = [
  // direct columns, however named
  'select * from customers',
  'select email, phone, ssn, full_name, address, birth_date from customers',
  'select email as e, ssn as x, full_name as "Name" from customers c',
  'select c.email, c.phone from customers c',
  'select customers.ssn from public.customers',
  'table customers',
  'select * from payments',
  'select * from accounts',
  // expressions, functions, casts, aggregates
  'select lower(email) from customers',
  'select trim(full_name) from customers',
  "select email || '' from customers",
  "select '' || ssn || '' as s from customers",
  "select concat(full_name, ' ', email) from customers",
  "select string_agg(email, ',') from customers",
  "select string_agg(full_name, ';' order by id) from customers",
  'select md5(ssn), ssn from customers',
  'select substr(card_number, 1, 16) from payments',
  "select replace(address, ',', ',') from customers",
  "select format('%s', ssn) from customers",
  "select coalesce(email, 'x') from customers",
  'select case when id > 0 then phone end from customers',
  'select email::varchar(200) from customers',
  'select ssn::text, birth_date::text from customers',
  "select to_char(birth_date, 'YYYY-MM-DD') from customers",
  'select array_agg(email) from customers',
  'select array_agg(ssn)::text from customers',
  'select (array_agg(full_name))[1] from customers',
  'select unnest(array[email, ssn]) from customers',
  'select x from customers, lateral (select email) as t(x)',
  'select reverse(reverse(email)) from customers',
  "select translate(full_name, 'a', 'a') from customers",
  'select left(address, 100) from customers',
  "select greatest(email, '') from customers",
  'select email collate "C" from customers',
  "select regexp_replace(email, '@', '@') from customers",
  "select split_part(email, '@', 1) || '@' || split_part(email, '@', 2) from customers",
  "select encode(convert_to(ssn, 'UTF8'), 'escape') from customers",
  'select xmlelement(name x, email) from customers',
  'select first_value(email) over (order by id) from customers',
  'select distinct on (email) email from customers order by email',
  'select email from customers group by email having count(*) > 0',
  'select last_ip::text, host(last_ip) from accounts',
  // whole rows and documents
  'select c from customers c',
  'select c::text from customers c',
  'select row_to_json(c) from customers c',
  'select to_jsonb(c) from customers c',
  'select json_agg(c) from customers c',
  'select c.* from customers c',
  'select row(email, ssn) from customers',
  "select json_build_object('a', email, 'b', ssn) from customers",
  "select jsonb_build_object('k', full_name)::text from customers",
  "select to_json(c)->>'email' from customers c",
  'select row_to_json(c)::text from customers c',
  'select array_agg(c) from customers c',
  'select (c).email from customers c',
  "select jsonb_agg(jsonb_build_object('x', ssn)) from customers",
  'select row_to_json(a) from accounts a',
  // CTEs, subqueries, set operations, views
  'with t as (select email as e from customers) select e from t',
  'with t(a) as (select ssn from customers) select upper(a) from t',
  'select e from (select email e from customers) s',
  'select (select email from customers order by id limit 1)',
  'select array(select ssn from customers)',
  'select email from customers union select full_name from customers',
  'select id::text from customers union all select ssn from customers',
  "select 'x' union all select card_number from payments",
  'select * from v_contacts',
  'select contact, who from v_contacts',
  "select contact || '' from v_contacts",
  'with recursive r(n, e) as (select 1, email from customers where id = 1 union all select n + 1, e from r where n < 2) select e from r',
  'select * from customers join orders on orders.customer_id = customers.id',
  'select * from customers join orders using (id)',
  'select * from (values (1)) v(x), customers',
  'select p.card_number, c.email from payments p join orders o on o.id = p.order_id join customers c on c.id = o.customer_id',
  'select (select string_agg(ssn, \',\') from customers c2 where c2.id = c.id) from customers c',
  'select t.* from (select * from customers) t',
  'select (t).* from (select c as t from customers c) s',
  'update customers set country = country where id < 5 returning email, ssn',
  'update customers c set country = country where id < 5 returning c.*',
  "select jsonb_path_query(to_jsonb(c), '$.email') from customers c",
  "select (to_jsonb(c) - 'id')::text from customers c",
  "select n || '' from unnest(array(select full_name from customers)) n",
  "select format('%s', c) from customers c",
  'values ((select email from customers order by id limit 1))',
  'select * from unnest(array(select email from customers))',
  // planner statistics sample the column values themselves
  "select attname, most_common_vals::text, histogram_bounds::text from pg_stats where tablename = 'customers'",
  // free text and documents only the scanner can see
  'select body from notes',
  'select array[body, null] from notes',
  'select payload from events',
  "select payload->>'contact' from events",
  'select id, body from notes union all select id, payload::text from events',
  // what lineage cannot see into
  'select get_email(1)',
  'select get_email(id) as harmless from customers',
  "select query_to_xml('select email, ssn from customers', true, false, '')",
  'select * from json_populate_record(null::customers, (select row_to_json(c) from customers c limit 1))',
  'select 1 as a; select email from customers; select lower(ssn) from customers',
]

describe('leak corpus: no seeded value reaches a masked client', () => {
  let fx: MaskingFixture
  let tunnel: TestTunnel
  let relay: Awaited<ReturnType<typeof recordingRelay>>
  let filters: MaskingFilter[]

  beforeAll(async () => {
    fx = await maskingFixture()
    const factory = createMaskingFilterFactory({catalog: fx.catalog, masking: NO_CONFIG, identity: {groups: ['engineering'], kind: 'human'}, hashKey: 'test-key'})
    filters = []
    const recording: ResultFilterFactory = (sql, ctx, verdict) => {
      const f = factory(sql, ctx, verdict) as MaskingFilter | undefined
      if (f) filters.push(f)
      return f
    }
    // The pipeline composes ensureFresh and checkMaskable into the statement hook (src/pipeline/masking.ts); the corpus runs with the same composition.
    const verdict = (sql: string, ctx: Parameters<StatementHook>[1]) => {
      const v = factory.checkMaskable(sql, ctx)
      return v.ok ? ({action: 'allow'} as const) : ({action: 'reject', error: {severity: 'ERROR', code: '42501', message: `dbgate: ${v.reason}`}} as const)
    }
    const statement: StatementHook = (sql, ctx) => {
      const fresh = factory.ensureFresh(sql, ctx)
      return fresh ? fresh.then(() => verdict(sql, ctx)) : verdict(sql, ctx)
    }
    // And as the runtime does (src/masking/runtime.ts), a closed connection's state goes with it and an idle one settles.
    tunnel = await startTunnel(fx.db, {resultFilter: recording, statement, onIdle: (id, session) => void factory.ended(id, session)?.catch(() => {}), onConnectionClosed: (id) => factory.forgetConnection(id)})
    relay = await recordingRelay(tunnel.port)
  })

  afterAll(async () => {
    await relay?.close()
    await tunnel?.close()
    await fx?.close()
  })

  /** A client through the recording relay; what it receives lands in `seen.bytes`. */
  const client = (seen: Seen, extra: Partial<pg.ClientConfig> = {}): Promise<pg.Client> => relayedClient(tunnel.url, relay, seen, extra)

  it('has no vacuous query: each returns seeded values to an unmasked identity', async () => {
    const clear = createMaskingFilterFactory({catalog: fx.catalog, masking: {...NO_CONFIG, unmask: ['pii-readers']}, identity: {groups: ['pii-readers'], kind: 'human'}})
    const plain = await startTunnel(fx.db, {resultFilter: clear})
    try {
      const c = await plain.client()
      const silent: string[] = []
      for (const sql of CORPUS) {
        const r = await c.query(sql)
        if (leaked(JSON.stringify(r), fx.secrets).length === 0) silent.push(sql)
      }
      expect(silent).toEqual([])
    } finally {
      await plain.close()
    }
  })

  it(`masks all ${CORPUS.length} corpus queries in text format`, async () => {
    expect(CORPUS.length).toBeGreaterThanOrEqual(60)
    const failures: string[] = []
    const errors: string[] = []
    for (const sql of CORPUS) {
      const seen: Seen = {bytes: [], strings: []}
      const c = await client(seen)
      try {
        await c.query(sql)
      } catch (error) {
        errors.push(`${sql}: ${String(error)}`)
        seen.strings.push(String(error))
      }
      await c.end()
      const found = leaked(all(seen), fx.secrets)
      if (found.length > 0) failures.push(`${sql}\n    leaked: ${found.slice(0, 3).join(' | ')}`)
    }
    expect(failures).toEqual([])
    // Masked results still parse: the driver rejected none of them.
    expect(errors).toEqual([])
  })

  it.each([
    ['text', false],
    ['binary', true],
  ])('masks the corpus over the extended protocol in %s format', async (_format, binary) => {
    const failures: string[] = []
    const seen: Seen = {bytes: [], strings: []}
    const c = await client(seen, {binary} as Partial<pg.ClientConfig>)
    const errors: string[] = []
    for (const sql of CORPUS.filter((q) => !q.includes(';'))) {
      const before = seen.bytes.length
      try {
        await c.query({text: sql, queryMode: 'extended'} as pg.QueryConfig)
      } catch (error) {
        errors.push(`${sql}: ${String(error)}`)
        seen.strings.push(String(error))
      }
      const found = leaked(Buffer.concat(seen.bytes.slice(before)), fx.secrets)
      if (found.length > 0) failures.push(`${sql}\n    leaked: ${found.slice(0, 3).join(' | ')}`)
    }
    const row = await c.query('select email, ssn, birth_date::timestamp as born, id, 258::int4 as marker from customers where id = $1', [1])
    // Masked values still parse as their types: a derived date of birth becomes 1900-01-01.
    expect(row.rows[0].born).toBeInstanceOf(Date)
    // (node-postgres reads negative binary timestamps as sign-magnitude, so only text shows the year.)
    if (!binary) expect((row.rows[0].born as Date).getFullYear()).toBe(1900)
    expect(row.rows[0].id).toBe(1)
    expect(row.rows[0].email).toBe('a***@example.com')
    // 258 as a binary int4 is 00 00 01 02 on the wire; as text it is the digits.
    expect(Buffer.concat(seen.bytes).includes(Buffer.from([0, 0, 1, 2]))).toBe(binary)
    await c.end()
    expect(failures).toEqual([])
    expect(errors).toEqual([])
    expect(leaked(all(seen), fx.secrets)).toEqual([])
  })

  it('masks COPY … TO STDOUT in text, CSV and binary formats (pg-copy-streams)', async () => {
    const copies = [
      'copy customers to stdout',
      'copy (select lower(email), ssn from customers) to stdout with (format csv, header true)',
      "copy customers (email, ssn, full_name) to stdout (format csv, delimiter '|', quote '''')",
      'copy (select c from customers c) to stdout',
      'copy (select row_to_json(c) from customers c) to stdout',
      'copy accounts to stdout with csv',
      'copy notes to stdout',
      'copy (select get_email(id) from customers) to stdout',
      'copy customers to stdout (format binary)',
      'copy (select * from v_contacts) to stdout csv',
    ]
    const seen: Seen = {bytes: [], strings: []}
    const c = await client(seen)
    const failures: string[] = []
    for (const sql of copies) {
      const before = seen.bytes.length
      const chunks: Buffer[] = []
      await new Promise<void>((resolve, reject) => {
        const stream = c.query(copyTo(sql))
        stream.on('data', (b: Buffer) => chunks.push(b))
        stream.on('end', () => resolve())
        stream.on('error', reject)
      })
      expect(chunks.length).toBeGreaterThan(0)
      const found = leaked(Buffer.concat([...seen.bytes.slice(before), ...chunks]), fx.secrets)
      if (found.length > 0) failures.push(`${sql}\n    leaked: ${found.slice(0, 3).join(' | ')}`)
    }
    await c.end()
    expect(failures).toEqual([])
  })

  it('masks values echoed in errors, notices and notifications', async () => {
    const seen: Seen = {bytes: [], strings: []}
    const c = await client(seen)
    const failing = [
      // unique violation: Key (email)=(…) already exists
      "insert into customers (id, full_name, email) select 999, 'x', email from customers where id = 1",
      // data exceptions quoting their input
      'select email::int from customers',
      'select full_name::int from customers',
      'select ssn::date from customers',
      // not-null violation: Failing row contains (…)
      'insert into customers (id, full_name, email, phone, ssn) select 2000, full_name, null, phone, ssn from customers where id = 1',
      "do $$ begin raise exception 'found %', (select full_name from customers where id = 2); end $$",
    ]
    const messages: string[] = []
    for (const sql of failing) {
      const err = await c.query(sql).then(
        () => undefined,
        (e: Error) => e,
      )
      expect(err, sql).toBeInstanceOf(Error)
      messages.push(JSON.stringify(err))
    }
    await c.query("do $$ begin raise notice 'who: %', (select full_name || ' ' || ssn from customers where id = 3); end $$")
    // A trigger on the table the statement writes prints a row: the statement itself looks harmless.
    await c.query("create function shout() returns trigger language plpgsql as $$ begin raise notice 'changed: %', new.full_name; return new; end $$")
    await c.query('create trigger customers_shout after update on customers for each row execute function shout()')
    await c.query('update customers set country = country where id = 8')
    await c.query('drop trigger customers_shout on customers')
    await c.query('listen changes')
    await c.query('listen leak')
    // A trigger sends whole rows and e-mails as payloads: the session filter masks them.
    await c.query('update customers set country = country where id in (5, 6)')
    // Sending sensitive values as a payload directly is refused: no filter could mask them for other listeners.
    const refused: string[] = []
    for (const sql of ["select pg_notify('leak', email) from customers where id = 4", "select pg_notify('leak', (select full_name from customers where id = 6))"]) {
      refused.push(await c.query(sql).then(() => 'ran', (e: Error) => e.message))
    }
    expect(refused).toEqual([expect.stringMatching(/notification payload/), expect.stringMatching(/notification payload/)])
    await c.query('select 1')
    await c.end()
    const text = messages.join('\n')
    expect(text).toMatch(/already exists/)
    expect(text).toMatch(/Failing row contains/)
    const payloads = seen.strings.filter((s) => s.includes('"channel":"changes"'))
    expect(payloads).toHaveLength(4)
    // The DO block's and the trigger's RAISE NOTICE both arrive, their text masked.
    expect(seen.strings.filter((s) => s.includes('"routine":"exec_stmt_raise"') && s.includes('"message":"[masked]"'))).toHaveLength(2)
    expect(payloads.some((p) => p.includes('full_name'))).toBe(true)
    expect(leaked(all(seen), fx.secrets)).toEqual([])
  })

  it('masks cursors, prepared statements and temporary tables the catalog does not know', async () => {
    const seen: Seen = {bytes: [], strings: []}
    const c = await client(seen)
    await c.query('begin')
    await c.query('declare cur cursor for select lower(email), upper(ssn) from customers')
    await c.query('fetch all from cur')
    await c.query('close cur')
    await c.query('commit')
    await c.query('prepare p1 as select upper(full_name), md5(email) || email from customers')
    await c.query('execute p1')
    await c.query('create temp table copied as select email as contact, full_name as label from customers')
    await c.query('select * from copied')
    await c.query('select upper(contact) from copied')
    await c.query('create view v_late as select ssn as z from customers')
    await c.query('select * from v_late')
    await c.end()
    expect(leaked(all(seen), fx.secrets)).toEqual([])
  })

  it('masks what psql prints, including \\copy and expanded output', async () => {
    const env = pgEnv(tunnel.port, tunnel.secret, fx.db.database)
    const script = [
      'select * from customers;',
      'select c from customers c;',
      'select row_to_json(c) from customers c;',
      '\\x on',
      'select email, lower(ssn) from customers limit 3;',
      '\\x off',
      '\\copy customers to stdout',
      '\\copy (select upper(full_name) from customers) to stdout csv',
      "insert into customers (id, full_name, email) select 998, 'x', email from customers where id = 7;",
      'select * from notes;',
      '\\d customers',
    ].join('\n')
    const out = await run('psql', ['-X', '-v', 'ON_ERROR_STOP=0', '-f', '-'], {env, input: script})
    expect(out.stdout).toMatch(/masked\.invalid|\*\*\*@example\.com/)
    expect(out.stderr).toMatch(/already exists/)
    // psql's own catalog queries are left alone.
    expect(out.stdout).toMatch(/birth_date\s+\|\s+date/)
    expect(leaked(out.stdout + out.stderr, fx.secrets)).toEqual([])
  })

  it('tells the recorder which columns it masked and why, never the values', () => {
    const masked = filters.flatMap((f) => f.maskedColumns)
    const email = masked.find((m) => m.name === 'email' && m.how === 'direct')
    expect(email).toMatchObject({category: 'email', strategy: 'partial'})
    expect(email!.reasons[0]).toMatch(/customers\.email: name matches/)
    expect(masked.some((m) => m.how === 'derived' && m.category === 'national_id')).toBe(true)
    expect(masked.some((m) => m.how === 'document')).toBe(true)
    expect(masked.some((m) => m.how === 'untraceable')).toBe(true)
    expect(leaked(JSON.stringify(filters.map((f) => [f.maskedColumns, f.scannerHits])), fx.secrets)).toEqual([])
    expect(formatMaskedColumn(email!)).toMatch(/^email \(result \d+, column 2\): email, partial, direct; public\.customers\.email: name matches/)
  })
})
