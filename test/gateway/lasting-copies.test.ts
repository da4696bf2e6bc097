import {readFileSync} from 'node:fs'
import {mkdtemp} from 'node:fs/promises'
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

describe('dbgate gateway: a copy of sensitive values one person makes never reads clear for another', () => {
  let f: Fixture
  let pki: TestPki
  let db: UpstreamInfo
  let dir: string
  let gw: RunningGateway
  let statuses: string

  beforeAll(async () => {
    ;[f, pki, db] = await Promise.all([fixture(), makePki(), createTestDatabase('gwlasting')])
    await withClient(db.url, (c) => c.query(`${sampleSchemaSql()}; create table customer_names (id int, full_name text)`))
    statuses = JSON.stringify((await withClient(db.url, (c) => c.query('select id, status from orders order by id'))).rows)
    dir = await mkdtemp(path.join(tmpdir(), 'dbgate-gwlasting-'))
    const env = {...isolatedEnv(), TEST_APP_PASSWORD: db.password}
    // Masking alone is under test: policy none lets every write through to it.
    const loaded = gatewayConfig({pki, dir, issuer: f.dev.issuer, clientId: f.dev.cliClientId, env, targets: targetConfigText('app', db, 'allow: [engineering]\npolicy: none')})
    gw = await startGateway({loaded, env})
    await gw.whenReady()
  })
  afterAll(() => closeGatewayTest(gw, f, [dir, pki?.dir]))

  const signIn = async (who: string): Promise<pg.Client> => {
    const token = await mint(f.signingKey, {iss: f.dev.issuer, aud: f.dev.cliClientId, sub: who, email: `${who}@example.com`, groups: ['engineering']})
    const c = new pg.Client({host: '127.0.0.1', port: gw.address.port, database: 'app', user: `${who}@example.com`, password: token, ssl: {ca: readFileSync(pki.ca, 'utf8'), servername: 'localhost'}})
    await c.connect()
    return c
  }
  const leaked = (seen: string) => SECRETS.filter((s) => seen.includes(s))

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
