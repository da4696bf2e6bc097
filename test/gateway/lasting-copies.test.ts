import {readFileSync} from 'node:fs'
import {chmod, mkdtemp} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import pg from 'pg'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {sampleCustomers, sampleSchemaSql} from '../../src/demo/sample-data.js'
import {startGateway, type RunningGateway} from '../../src/gateway/gateway.js'
import {fixture, mint, type Fixture} from '../identity/helpers.js'
import {isolatedEnv, targetConfigText} from '../helpers/open.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {gatewayConfig, makePki, type TestPki, closeGatewayTest} from './helpers.js'

/**
 * The gateway keeps one pipeline per person, and what a pipeline learns from the statements it sees
 * (that orders.status now holds names, because bob's `UPDATE orders SET status = c.full_name` ran)
 * lived only there: alice, whose pipeline reads the catalog as it is, saw every name bob copied in
 * clear, and so did bob after the gateway restarted. Such a copy into a column a read from scratch
 * does not mask is now refused before it runs, by whatever route it is written.
 */
const SECRETS = sampleCustomers().flatMap((c) => [c.fullName, c.address, c.email.split('@')[0]!])

/** bob's copies of names, addresses and e-mail addresses into orders.status, which nothing classifies. */
const COPIES: {sql: string; extended?: true}[] = [
  {sql: 'update orders set status = c.full_name from customers c where c.id = orders.customer_id and orders.id > 0'},
  {sql: 'update orders set status = c.full_name from customers c where c.id = orders.customer_id and orders.id > $1', extended: true},
  {sql: "update orders set status = (select lower(email) || '' from customers c where c.id = orders.customer_id) where id > 0"},
  {sql: 'with x as (select id, address from customers) update orders set status = x.address from x where x.id = orders.customer_id and orders.id > 0'},
  {sql: 'insert into orders (id, customer_id, status, total_cents, placed_at) select 9000 + id, id, full_name, 0, now() from customers'},
  {sql: 'insert into orders (id, customer_id, status, total_cents, placed_at) select o.id, o.customer_id, c.full_name, 0, now() from orders o join customers c on c.id = o.customer_id on conflict (id) do update set status = excluded.status'},
  {sql: 'merge into orders o using customers c on o.customer_id = c.id when matched then update set status = c.address'},
  {sql: 'prepare copy_names as update orders set status = c.full_name from customers c where c.id = orders.customer_id and orders.id > 0; execute copy_names'},
]

/**
 * Routes by which the check did not follow what a write copies, each a sequence bob runs in one
 * session (`FILE` is a server file of the run's own), and what alice reads afterwards:
 * - `UPDATE … SET (a, b) = (SELECT id, full_name …)`: the parser leaves the subquery an ordinary
 *   scalar one, whose first column was taken for every column assigned (also `= ROW(…)`, in MERGE
 *   and ON CONFLICT DO UPDATE);
 * - a rule whose actions copy NEW's columns (NEW and OLD were untraceable, so never refused), then
 *   a write of names into the rule's own, classified, table; also when that table is made in the
 *   same text or transaction as the rule, before the catalog knows its columns;
 * - a temporary table filled earlier in the same text, read back into a lasting one: the catalog
 *   learns what an earlier statement of a text wrote only after the text;
 * - what a writing CTE returns (`INSERT INTO tmp … RETURNING n`), which was read as the catalog's
 *   clean tmp.n, not as the names just written into it;
 * - `CREATE TABLE … AS EXECUTE p`, and `EXPLAIN ANALYZE CREATE TABLE … AS …`, which runs it;
 * - `COPY (SELECT full_name …) TO '/tmp/f'` and back with `COPY t FROM '/tmp/f'`, whose values no
 *   analysis traces;
 * - a foreign table over a table of this database (a loopback server), or a partitioned table with
 *   such a partition: its columns are masked, but the rows land in the remote table, read without it;
 * - in a text too large for masking to analyse, `COPY … TO` a file, `CREATE RULE`, `CREATE OR
 *   REPLACE VIEW` and `ALTER TABLE … TYPE … USING` were not among the copies refused unread;
 * - a materialized view over a view, which keeps the names the view's definition computed when the
 *   view is replaced (`CREATE OR REPLACE VIEW`, or its `_RETURN` rule) by one of constants: every
 *   read follows the new definition, and found the column clean.
 */
const ROUTES: {steps: string[]; reads: string[]; directReads?: string[]}[] = [
  {steps: ['update pairs set (a, b) = (select id, full_name from customers where id = 1) where a = 1'], reads: ['select * from pairs']},
  {steps: ['update pairs set (b, a) = (select address, 1 from customers where id = 2) where a = 1'], reads: ['select * from pairs']},
  {steps: ['update pairs set (a, b) = row(1, (select full_name from customers where id = 3)) where a = 1'], reads: ['select * from pairs']},
  {steps: ['merge into pairs p using (select 1 as id) s on p.a = s.id when matched then update set (a, b) = (select 1, full_name from customers where id = 4)'], reads: ['select * from pairs']},
  {steps: ['insert into pairs values (1, null) on conflict (a) do update set (a, b) = (select 1, address from customers where id = 5)'], reads: ['select * from pairs']},
  {steps: ['create rule names_logged as on insert to names_src do also insert into copy_log (status) values (new.full_name)', 'insert into names_src select full_name from customers'], reads: ['select * from copy_log']},
  {steps: ['create rule names_moved as on update to names_src do instead update copy_log set status = new.full_name', "insert into copy_log values ('x')", 'insert into names_src select full_name from customers', 'update names_src set full_name = full_name'], reads: ['select * from copy_log']},
  {steps: ['create table names_src2 (full_name text); create rule names_logged2 as on insert to names_src2 do also insert into copy_log (status) values (new.full_name)', 'insert into names_src2 select full_name from customers'], reads: ['select * from copy_log']},
  {steps: ['begin', 'create table names_src3 (address text)', 'create rule names_logged3 as on insert to names_src3 do also insert into copy_log (status) values (new.address)', 'commit', 'insert into names_src3 select address from customers'], reads: ['select * from copy_log']},
  {steps: ['create temp table tmp_a (n text); insert into tmp_a select full_name from customers; insert into copy_log (status) select n from tmp_a'], reads: ['select * from copy_log']},
  {steps: ['create temp table tmp_b as select address from customers; insert into copy_log select * from pg_temp.tmp_b'], reads: ['select * from copy_log']},
  {steps: ['create temp table tmp_c as select full_name as n from customers; create table copied_c as select n from tmp_c'], reads: ['select * from copied_c']},
  {steps: ['select address as n into temp tmp_c2 from customers; create table copied_c2 as select * from tmp_c2'], reads: ['select * from copied_c2']},
  {steps: ['create temp table tmp_d (n text)', 'insert into tmp_d select full_name from customers; update copy_log set status = (select max(n) from tmp_d)'], reads: ['select * from copy_log']},
  {steps: ['create temp table tmp_r (n text)', 'with x as (insert into tmp_r (n) select full_name from customers returning n) insert into copy_log (status) select n from x'], reads: ['select * from copy_log']},
  {steps: ['create temp table tmp_s (n text)', "insert into tmp_s values ('a')", 'with x as (update tmp_s set n = c.address from customers c where c.id = 1 returning *) update pairs set b = x.n from x'], reads: ['select * from pairs']},
  {steps: ['prepare names_e as select full_name as n from customers', 'create table copied_e as execute names_e'], reads: ['select * from copied_e']},
  {steps: ['prepare names_f(int) as select address from customers where id > $1', 'create table copied_f (a) as execute names_f(0)'], reads: ['select * from copied_f']},
  {steps: ['explain analyze create table copied_g as select full_name as n from customers'], reads: ['select * from copied_g']},
  {steps: ['explain (analyze, costs off) select address as n into copied_h from customers'], reads: ['select * from copied_h']},
  {steps: ['prepare names_i as select full_name as n from customers', 'explain analyze create table copied_i as execute names_i'], reads: ['select * from copied_i']},
  {steps: ["copy (select full_name from customers) to 'FILE-j'", "copy copy_log from 'FILE-j'"], reads: ['select * from copy_log']},
  {steps: ["copy customers (full_name, id) to 'FILE-k' (format csv)", 'create temp table tmp_k (n text, i int)', "copy tmp_k from 'FILE-k' (format csv)", "copy (select n from tmp_k) to 'FILE-k2'", "copy copy_log from 'FILE-k2'"], reads: ['select * from copy_log']},
  {steps: ["copy (select upper(address) from customers) to program 'cat > FILE-l'", "copy copy_log from 'FILE-l'"], reads: ['select lower(status) from copy_log']},
  {steps: ["create foreign table remote_log (status text) server loop options (table_name 'remote_names')", 'insert into remote_log select full_name from customers'], reads: ['select * from remote_names'], directReads: ['select * from remote_log']},
  {steps: ['create table parted_pairs (a int, b text) partition by range (a)', "create foreign table parted_pairs_far partition of parted_pairs for values from (100) to (100000) server loop options (table_name 'remote_pairs')", 'insert into parted_pairs select 100 + id, address from customers'], reads: ['select * from remote_pairs'], directReads: ['select * from parted_pairs']},
  {steps: ['create view names_v as select id, full_name as n from customers', 'create materialized view names_mv as select n from names_v', "create or replace view names_v as select id, 'x'::text as n from customers"], reads: ['select * from names_mv']},
  {steps: ['create view addr_v as select id, address as n from customers', 'create view addr_v2 as select * from addr_v', 'create materialized view addr_mv as select * from addr_v2', "create or replace view addr_v as select id, n from (select 1 as id, 'y'::text as n) s"], reads: ['select n from addr_mv']},
  {steps: ["create view names_v3 as select id, full_name as n from customers; create materialized view names_mv3 as select n from names_v3; create or replace view names_v3 as select id, 'x'::text as n from customers"], reads: ['select * from names_mv3']},
  {steps: ['create view names_v4 as select id, full_name as n from customers', 'create materialized view names_mv4 as select n from names_v4', `create or replace rule "_RETURN" as on select to names_v4 do instead select id, 'x'::text as n from customers`], reads: ['select * from names_mv4']},
]
/** Past the size masking analyses (`MAX_ANALYZED_SQL`): such a text's copies were judged by the guardrails' reading alone. */
const PAD = ` /* ${'x'.repeat(300 * 1024)} */`
ROUTES.push(
  {steps: [`copy (select full_name from customers) to 'FILE-m'${PAD}`, "copy copy_log from 'FILE-m'"], reads: ['select * from copy_log']},
  {steps: [`create rule names_logged_big as on insert to names_src do also insert into copy_log (status) values (new.full_name)${PAD}`, 'insert into names_src select full_name from customers'], reads: ['select * from copy_log']},
  {steps: ['create view names_v5 as select id, full_name as n from customers', 'create materialized view names_mv5 as select n from names_v5', `create or replace view names_v5 as select id, 'x'::text as n from customers${PAD}`], reads: ['select * from names_mv5']},
  {steps: [`alter table customers alter column country type text using full_name${PAD}`], reads: ['select country from customers']},
)
const ROUTE_TABLES = 'create table pairs (a int primary key, b text); create table copy_log (status text); create table names_src (full_name text)'

describe('dbgate gateway: a copy of sensitive values one person makes never reads clear for another', () => {
  let f: Fixture
  let pki: TestPki
  let db: UpstreamInfo
  let dir: string
  let gw: RunningGateway
  let statuses: string
  let files: string

  beforeAll(async () => {
    ;[f, pki, db] = await Promise.all([fixture(), makePki(), createTestDatabase('gwlasting')])
    await withClient(db.url, (c) =>
      c.query(`${sampleSchemaSql()}; create table customer_names (id int, full_name text);
        create table remote_names (status text); create table remote_pairs (a int, b text);
        create extension postgres_fdw;
        create server loop foreign data wrapper postgres_fdw options (host '${db.host}', port '${db.port}', dbname '${db.database}');
        create user mapping for current_user server loop options (user '${db.user}', password '${db.password}')`),
    )
    statuses = JSON.stringify((await withClient(db.url, (c) => c.query('select id, status from orders order by id'))).rows)
    dir = await mkdtemp(path.join(tmpdir(), 'dbgate-gwlasting-'))
    // The server writes the routes' files (FILE) as its own user.
    files = await mkdtemp(path.join(tmpdir(), 'dbgate-gwlasting-files-'))
    await chmod(files, 0o777)
    const env = {...isolatedEnv(), TEST_APP_PASSWORD: db.password}
    // Masking alone is under test: policy none lets every write through to it.
    const loaded = gatewayConfig({pki, dir, issuer: f.dev.issuer, clientId: f.dev.cliClientId, env, targets: targetConfigText('app', db, 'allow: [engineering]\npolicy: none')})
    gw = await startGateway({loaded, env})
    await gw.whenReady()
  })
  afterAll(() => closeGatewayTest(gw, f, [dir, pki?.dir, files]))

  const signIn = async (who: string): Promise<pg.Client> => {
    const token = await mint(f.signingKey, {iss: f.dev.issuer, aud: f.dev.cliClientId, sub: who, email: `${who}@example.com`, groups: ['engineering']})
    const c = new pg.Client({host: '127.0.0.1', port: gw.address.port, database: 'app', user: `${who}@example.com`, password: token, ssl: {ca: readFileSync(pki.ca, 'utf8'), servername: 'localhost'}})
    await c.connect()
    return c
  }
  const leaked = (seen: string) => SECRETS.filter((s) => seen.includes(s))
  const leakedAnyCase = (seen: string) => SECRETS.filter((s) => seen.toLowerCase().includes(s.toLowerCase()))

  it('has no vacuous case: directly, each copies names, addresses or e-mail local parts into orders.status', async () => {
    for (const {sql, extended} of COPIES) {
      const seen = await withClient(db.url, async (c) => {
        await c.query('begin')
        await c.query(extended ? {text: sql, values: [0]} : sql)
        const r = JSON.stringify((await c.query('select status from orders')).rows)
        await c.query('rollback')
        return r
      })
      expect(leaked(seen), sql).not.toEqual([])
    }
  })

  it("refuses bob's copies into a column no read masks, so alice reads orders.status as it was", async () => {
    const bob = await signIn('bob')
    const alice = await signIn('alice')
    try {
      for (const {sql, extended} of COPIES) {
        const error = await bob.query(extended ? {text: sql, values: [0]} : sql).then(
          () => '',
          (e: Error) => e.message,
        )
        expect(error, sql).toMatch(/masking refuses writing to (public\.)?orders: it copies values from public\.customers\.(full_name|email|address) into public\.orders\.status, which the catalog does not classify as sensitive/)
        const read = JSON.stringify((await alice.query('select id, status from orders order by id')).rows)
        expect(leaked(read), sql).toEqual([])
        expect(read, sql).toBe(statuses)
      }
      expect(JSON.stringify((await withClient(db.url, (c) => c.query('select id, status from orders order by id'))).rows)).toBe(statuses)
    } finally {
      await Promise.all([bob.end(), alice.end()])
    }
  })

  it('has no vacuous route: directly, each leaves names or addresses where a later read finds them', async () => {
    for (const {steps, reads, directReads} of ROUTES) {
      const seen = await withClient(db.url, async (c) => {
        await c.query(`begin; ${ROUTE_TABLES}; insert into pairs values (1, 'x'); insert into copy_log values ('x')`)
        // Inside the transaction that is rolled back afterwards.
        for (const sql of steps) if (!/^(begin|commit)$/.test(sql)) await c.query(sql.replaceAll('FILE', path.join(files, 'direct')))
        let r = ''
        // A loopback write is the remote transaction's until both commit: read back through it.
        for (const sql of directReads ?? reads) r += JSON.stringify((await c.query(sql)).rows)
        await c.query('rollback')
        return r
      })
      expect(leakedAnyCase(seen), steps.join('; ').slice(0, 300)).not.toEqual([])
    }
  })

  it("refuses each of bob's routes before the copy runs, so alice reads nothing he copied", async () => {
    await withClient(db.url, (c) => c.query(`${ROUTE_TABLES}; insert into pairs values (1, 'x'); insert into copy_log values ('x')`))
    try {
      for (const {steps, reads} of ROUTES) {
        const bob = await signIn('bob')
        const errors: string[] = []
        try {
          for (const sql of steps) errors.push(await bob.query(sql.replaceAll('FILE', path.join(files, 'bob'))).then(() => '', (e: Error) => e.message))
        } finally {
          await bob.end()
        }
        expect(errors.join('\n'), steps.join('; ').slice(0, 300)).toMatch(/dbgate: masking (refuses (writing to|creating) \S+: it copies values from (public\.customers\.(full_name|address)|public\.names_src\.full_name|names_src[23]\.new\.\*)|cannot follow this query: COPY … TO a server file or program would store values derived from sensitive|refuses replacing the view \S+: the materialized view \S+ reads it|cannot follow what this (COPY … TO|CREATE RULE|CREATE VIEW|ALTER TABLE) copies into [^:]+: texts over 256 KiB are not analysed)/)
        // A new person, after the gateway's pipelines learnt whatever bob's statements taught them.
        const alice = await signIn('alice')
        try {
          let read = ''
          for (const sql of reads) read += await alice.query(sql).then((r) => JSON.stringify(r.rows), (e: Error) => e.message)
          expect(leakedAnyCase(read), steps.join('; ').slice(0, 300)).toEqual([])
        } finally {
          await alice.end()
        }
      }
    } finally {
      await withClient(db.url, (c) => c.query('drop table pairs, copy_log, names_src cascade'))
    }
  })

  it("lets bob copy names into a column classified for them, which alice reads masked", async () => {
    const bob = await signIn('bob')
    const alice = await signIn('alice')
    try {
      await bob.query('insert into customer_names (id, full_name) select id, full_name from customers')
      const read = JSON.stringify((await alice.query('select full_name from customer_names order by id')).rows)
      expect(leaked(read)).toEqual([])
      expect(read).toContain('[redacted]')
    } finally {
      await Promise.all([bob.end(), alice.end()])
    }
  })
})
