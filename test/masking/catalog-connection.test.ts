import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {catalogQueryFor, catalogValue, type ClosableCatalogQuery} from '../../src/masking/catalog-query.js'
import {discoverCatalog} from '../../src/masking/catalog.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'

/**
 * The tunnel's catalog connection (its own wire client, not node-postgres) against a real server:
 * the values the catalog readers rely on, failures, and a connection that comes back.
 */
describe('the catalog connection', () => {
  let db: UpstreamInfo
  let query: ClosableCatalogQuery

  beforeAll(async () => {
    db = await createTestDatabase()
    await withClient(db.url, (c) => c.query(`create table people (id int primary key, email text, born date); comment on column people.email is 'pii:email'`))
    query = catalogQueryFor({host: db.host, port: db.port, database: db.database, user: db.user, password: db.password, tls: 'disable'})
  })
  afterAll(async () => {
    await query?.close()
  })

  it('returns rows typed as the catalog readers take them', async () => {
    const rows = await query(`select true as yes, false as no, 7::int2 as small, 42::int4 as n, 'pg_class'::regclass::oid as o, 9007199254740993::int8 as big, 1.5::float8 as f, null::text as nothing, 'é ü'::text as t, ''::text as empty`)
    expect(rows).toEqual([{yes: true, no: false, small: 7, n: 42, o: 1259, big: '9007199254740993', f: 1.5, nothing: null, t: 'é ü', empty: ''}])
    expect(catalogValue(16, 'f')).toBe(false)
    expect(await query('select 1 as a where false')).toEqual([])
    expect(await query('select g as i from generate_series(1, 3000) g').then((r) => r.length)).toBe(3000)
  })

  it('runs the queries asked at once one after another, each with its own rows', async () => {
    const results = await Promise.all([1, 2, 3, 4, 5].map((i) => query(`select ${i} as i, pg_sleep(0.01) is null as slept`)))
    expect(results.map((r) => r[0]!.i)).toEqual([1, 2, 3, 4, 5])
  })

  it('fails a query with the server\'s error, then opens a fresh connection for the next', async () => {
    const pid = (await query('select pg_backend_pid() as pid'))[0]!.pid
    await expect(query('select * from no_such_table')).rejects.toThrow(/relation "no_such_table" does not exist/)
    const after = (await query('select pg_backend_pid() as pid, current_setting(\'application_name\') as app, current_setting(\'statement_timeout\') as timeout'))[0]!
    expect(after.pid).not.toBe(pid)
    expect(after).toMatchObject({app: 'dbgate masking discovery', timeout: '30s'})
  })

  it('comes back after the server ends its session', async () => {
    const pid = (await query('select pg_backend_pid() as pid'))[0]!.pid as number
    await withClient(db.url, (c) => c.query('select pg_terminate_backend($1)', [pid]))
    // The query after the kill either meets the dead connection (and fails) or finds it gone; the next one works.
    await query('select 1 as one').catch(() => undefined)
    expect(await query('select 1 as one')).toEqual([{one: 1}])
  })

  it('discovers the catalog the tunnel masks by', async () => {
    const catalog = await discoverCatalog(query)
    const [people] = catalog.lookup('public', 'people')
    expect(people?.columns.map((c) => [c.name, c.typeName])).toEqual([['id', 'int4'], ['email', 'text'], ['born', 'date']])
  })

  it('says why it cannot connect', async () => {
    const wrong = catalogQueryFor({host: db.host, port: db.port, database: db.database, user: db.user, password: 'not the password', tls: 'disable'})
    await expect(wrong('select 1')).rejects.toThrow(/password authentication failed|authentication failed/)
    await wrong.close()
  })
})
