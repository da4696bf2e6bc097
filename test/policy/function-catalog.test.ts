import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {TargetFunctionCatalog} from '../../src/connect/function-catalog.js'
import {catalogQueryFor, type ClosableCatalogQuery} from '../../src/masking/catalog-query.js'
import {analyze, catalogKeys, resolveCatalogCalls, evaluate} from '../../src/policy/index.js'
import {loadParser} from '../../src/sql/parser.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'

/** The tunnel's function lookups against a real catalog: what each kind of object resolves to, and what it costs. */
describe('TargetFunctionCatalog', () => {
  let db: UpstreamInfo
  let query: ClosableCatalogQuery
  const sent: string[] = []
  let counted: ClosableCatalogQuery

  beforeAll(async () => {
    await loadParser()
    db = await createTestDatabase()
    await withClient(db.url, (c) =>
      c.query(`
        create table t (id int, x int);
        create function risky_eq(int, int) returns bool language plpgsql as $$ begin delete from t; return true; end $$;
        create operator === (leftarg = int, rightarg = int, function = risky_eq);
        create function acc(int, int) returns int language plpgsql as $$ begin delete from t; return $1 + $2; end $$;
        create aggregate total(int) (sfunc = acc, stype = int, initcond = '0');
        create function email_ok(text) returns bool language plpgsql as $$ begin delete from t; return true; end $$;
        create domain email as text check (email_ok(value));
        create type mood as enum ('happy', 'sad');
        create function calm(int) returns int language sql immutable as 'select $1';
        create view archived as select risky_eq(id, x) as done from t;
        create view archived_again as select * from archived;
        create view plain as select id, calm(x) as x, now() as at from t;
        create table audit (note text);
        create rule log_it as on insert to audit do also select risky_eq(1, 1);
      `),
    )
    query = catalogQueryFor({host: db.host, port: db.port, database: db.database, user: db.user, password: db.password, tls: 'disable'})
    counted = Object.assign((sql: string) => {
      sent.push(sql)
      return query(sql)
    }, {close: () => query.close()})
  })
  afterAll(() => query.close())

  const judge = async (catalog: TargetFunctionCatalog, sql: string) => {
    const statements = analyze(sql).statements
    await catalog.load(catalog.missing(catalogKeys(statements)))
    return evaluate(resolveCatalogCalls(statements, catalog), {pack: 'default'}).decisive!
  }

  it('sees through operators, aggregates and domain casts to the functions they run', async () => {
    const catalog = new TargetFunctionCatalog({query: counted})
    expect(await judge(catalog, 'SELECT 1 === 2')).toMatchObject({action: 'require_approval', ruleId: 'default.volatile-function', detail: expect.stringMatching(/operator public\.===/)})
    expect(await judge(catalog, 'SELECT total(x) FROM t')).toMatchObject({action: 'require_approval', detail: expect.stringMatching(/aggregate public\.total/)})
    expect(await judge(catalog, "SELECT 'a@b'::email")).toMatchObject({action: 'require_approval', detail: expect.stringMatching(/check of domain public\.email/)})
    expect(await judge(catalog, "SELECT 'happy'::mood, calm(1), 1 = 2, count(*) FROM t")).toMatchObject({action: 'allow', ruleId: 'default.allow-read'})
    expect(await judge(catalog, 'SELECT nothing_here(1)')).toMatchObject({action: 'deny', ruleId: 'default.unknown-function'})
  })

  it('does not keep what it read before a change that was committed, and invalidated it, while the read ran', async () => {
    // The change lands between the read and the answer: kept, the old body would look fresh for a minute.
    await withClient(db.url, (c) => c.query("create sequence race_seq; create function peek_race() returns int language sql stable as 'select 1'"))
    let replaced = false
    const racing = Object.assign(
      async (sql: string) => {
        const rows = await query(sql)
        if (!replaced && sql.includes('prosrc')) {
          replaced = true
          await withClient(db.url, (c) => c.query("create or replace function peek_race() returns int language sql stable as 'select setval(''race_seq'', 1)::int'"))
          catalog.invalidate()
        }
        return rows
      },
      {close: () => query.close()},
    )
    const catalog: TargetFunctionCatalog = new TargetFunctionCatalog({query: racing})
    expect(await judge(catalog, 'SELECT peek_race()')).toMatchObject({action: 'require_approval', ruleId: 'default.sequence-reset-approval'})
    expect(replaced).toBe(true)
  })

  it('sees functions that views and rules call, through views of views, and leaves the system views alone', async () => {
    const catalog = new TargetFunctionCatalog({query: counted})
    expect(await judge(catalog, 'SELECT * FROM archived')).toMatchObject({action: 'require_approval', detail: expect.stringMatching(/view public\.archived/)})
    expect(await judge(catalog, 'SELECT count(*) FROM archived_again')).toMatchObject({action: 'require_approval', ruleId: 'default.volatile-function'})
    expect(await judge(catalog, "INSERT INTO audit VALUES ('x')")).toMatchObject({action: 'require_approval', detail: expect.stringMatching(/rule log_it on public\.audit/)})
    expect(await judge(catalog, 'SELECT * FROM plain p JOIN t ON t.id = p.id')).toMatchObject({action: 'allow'})
    expect(await judge(catalog, 'SELECT pid, state FROM pg_stat_activity, pg_locks')).toMatchObject({action: 'allow'})
  })

  it('looks a name up once: concurrent misses share one query, and a name already seen costs none', async () => {
    const catalog = new TargetFunctionCatalog({query: counted})
    sent.length = 0
    const keys = catalogKeys(analyze('SELECT calm(x), lower(y) FROM t WHERE id = 1').statements)
    await Promise.all([catalog.load(catalog.missing(keys)), catalog.load(catalog.missing(keys)), catalog.load(keys)])
    const first = sent.length
    expect(first).toBeGreaterThan(0)
    expect(first).toBeLessThanOrEqual(5) // one query each for the functions, the operator, the table, what is behind the table, and the bodies of the user functions found
    expect(catalog.missing(keys)).toEqual([])
    await judge(catalog, 'SELECT calm(x), lower(y) FROM t WHERE id = 1')
    expect(sent.length).toBe(first)
    // DDL through the tunnel forgets everything; the next statement looks again.
    catalog.invalidate()
    expect(catalog.missing(keys).length).toBe(keys.length)
  })

  it('fails closed when the catalog cannot be read, and tries again next time', async () => {
    let fail = true
    const flaky = Object.assign((sql: string) => (fail ? Promise.reject(new Error('connection refused')) : query(sql)), {close: async () => {}})
    const catalog = new TargetFunctionCatalog({query: flaky})
    expect(await judge(catalog, 'SELECT calm(1)')).toMatchObject({action: 'deny', ruleId: 'default.unknown-function', detail: expect.stringMatching(/lookup failed \(connection refused\)/)})
    fail = false
    expect(await judge(catalog, 'SELECT calm(1)')).toMatchObject({action: 'allow'})
  })

  /**
   * A session's change commits (and the tunnel invalidates the catalog at its idle ReadyForQuery)
   * while another statement's lookup is between its reads: the names were read before the commit,
   * the bodies after. Kept, that mix said `swap_me` was the harmless function renamed away, for a
   * minute, while the server ran the one renamed to it.
   */
  it('reads again what it read while the catalog was invalidated, and refuses after repeated changes', async () => {
    await withClient(db.url, (c) =>
      c.query(`
        create function swap_me(int) returns int immutable language sql as 'select $1';
        create function swap_evil(int) returns int language plpgsql as $$ begin delete from t; return $1; end $$;
        create function churn(int) returns int immutable language sql as 'select $1';
      `),
    )
    /** Runs after a read of functions by name came back, before the lookup's next read. */
    let afterNames: (() => Promise<void>) | undefined
    const racing = Object.assign(
      async (sql: string) => {
        const rows = await query(sql)
        if (/from pg_proc/.test(sql) && afterNames) await afterNames()
        return rows
      },
      {close: () => query.close()},
    )
    const catalog = new TargetFunctionCatalog({query: racing})
    afterNames = async () => {
      afterNames = undefined
      await withClient(db.url, (c) => c.query('begin; alter function swap_me(int) rename to swap_old; alter function swap_evil(int) rename to swap_me; commit'))
      catalog.invalidate()
    }
    expect(await judge(catalog, 'SELECT swap_me(1)')).toMatchObject({action: 'require_approval', ruleId: 'default.volatile-function', detail: expect.stringMatching(/public\.swap_me/)})

    // A catalog invalidated during every read never settles: the name stays unknown, and is refused.
    const churning = new TargetFunctionCatalog({query: racing})
    afterNames = async () => churning.invalidate()
    expect(await judge(churning, 'SELECT churn(1)')).toMatchObject({action: 'deny', ruleId: 'default.unknown-function', detail: expect.stringMatching(/catalog changed 3 times while it was being read/)})
    afterNames = undefined
    expect(await judge(churning, 'SELECT churn(1)')).toMatchObject({action: 'allow'})
  })
})
