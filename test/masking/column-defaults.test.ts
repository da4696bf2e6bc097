import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type pg from 'pg'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'

/**
 * A column's DEFAULT or generation expression fills it without the filling statement naming the
 * expression: `ALTER TABLE notes ADD COLUMN x text DEFAULT public.leak()` copies what leak() reads
 * (hr.salaries) into every row of a clean-looking column, and `ALTER COLUMN body SET DEFAULT …`
 * into every row written later (`INSERT … (id) VALUES (…) RETURNING body`). Each got the values
 * through in clear, in an open transaction (DDL that keeps relations) and after its commit alike.
 */
const SECRET = 'PAYROLL-SECRET'

describe('columns filled by defaults and generation expressions', () => {
  let db: UpstreamInfo
  let t: PipelineTunnel
  const direct = <T>(fn: (c: pg.Client) => Promise<T>) => withClient(db.url, fn)
  const stored = (sql: string) => direct(async (c) => JSON.stringify((await c.query(sql)).rows))

  beforeAll(async () => {
    db = await createTestDatabase()
    await direct((c) =>
      c.query(`
        create schema hr;
        create table hr.salaries (id int primary key, person text);
        insert into hr.salaries values (1, '${SECRET} alice'), (2, '${SECRET} bob');
        create function public.leak() returns text language sql stable as $$ select string_agg(person, ',') from hr.salaries $$;
        create table public.customers (id int, email text);
        insert into public.customers values (1, 'alice@example.com');
        create table public.b1 (id int, body text);
        insert into public.b1 values (1, 'one');
        ${FAMILIES.flatMap((f) => MODES.map((m) => `create table public.${f.table}_${m} (id int, body text${f.extra ?? ''}); insert into public.${f.table}_${m} (id, body) values (1, 'one'), (2, 'two');`)).join('\n')}
        create table public.under (id int, body text);
        create view public.over as select id, body from public.under;
        create function public.leak_of(int) returns text language plpgsql immutable as $$ begin return (select person from hr.salaries where id = $1); end $$;
      `),
    )
    const rules = ['rules:', '  - id: ddl', '    match: {class: ddl}', '    action: allow']
    t = await openPipelineTunnel(db, rules.join('\n'))
  }, 60_000)
  afterAll(() => t?.close())

  /** Runs each statement on one client; returns what came back (rows or the error), all joined. */
  const run = async (statements: string[]): Promise<string> => {
    const c = await t.client()
    try {
      const out: string[] = []
      for (const s of statements) out.push(await c.query(s).then((r) => JSON.stringify(r.rows), (e: Error) => `error: ${e.message}`))
      return out.join('\n')
    } finally {
      await c.end()
    }
  }

  // Tables the tunnel's catalog knew before the attack (made before it opened): one per family and mode.
  // A default is evaluated by statements that never name it, in any session: one not proven clean
  // is refused outright (masking's side-channel rule). A generation expression is followed: the
  // column it fills is masked. Either way the secret never reaches the client.
  const FAMILIES: {table: string; extra?: string; attack: (t: string) => string[]; column: string; refused?: true}[] = [
    {table: 'a1', attack: (t) => [`alter table public.${t} add column x text default public.leak()`, `select x from public.${t}`], column: 'x', refused: true},
    {table: 'a2', attack: (t) => [`alter table public.${t} add column g text generated always as (public.leak_of(id)) stored`, `select g from public.${t}`], column: 'g'},
    {table: 'a3', attack: (t) => [`alter table public.${t} alter column body set default public.leak()`, `insert into public.${t} (id) values (7) returning body`, `select body from public.${t} where id = 7`], column: 'body', refused: true},
    {table: 'a4', extra: ', g text generated always as (id::text) stored', attack: (t) => [`alter table public.${t} alter column g set expression as (public.leak_of(id))`, `select g from public.${t}`], column: 'g'},
    {table: 'a5', attack: (t) => [`alter table public.${t} add column x int, alter column x set default 0, add column y text default public.leak()`, `select y from public.${t}`], column: 'y', refused: true},
  ]
  const MODES = ['tx', 'auto'] as const

  it('masks what an added, re-defaulted or generated column of an existing table holds', async () => {
    for (const f of FAMILIES) {
      for (const mode of MODES) {
        const table = `${f.table}_${mode}`
        const attack = f.attack(table)
        const seen = await run(mode === 'tx' ? ['begin', ...attack, 'commit', attack.at(-1)!] : attack)
        expect(seen, attack.join('; ')).not.toContain(SECRET)
        if (f.refused) {
          expect(seen, attack.join('; ')).toMatch(/error: .*DEFAULT, or a partition bound, that is not proven clean/)
          expect(await stored(`select * from public.${table}`), attack[0]).not.toContain(SECRET)
          continue
        }
        expect(await stored(`select ${f.column} from public.${table}`), attack[0]).toContain(SECRET)
        expect(seen, attack.join('; ')).not.toMatch(/error/)
        expect(seen, attack.join('; ')).toContain('[masked]')
      }
    }
  })

  it('masks what a new table’s defaults, generated columns and copied defaults fill', async () => {
    const families = [
      ['create table public.n2 (id int, v text generated always as (public.leak_of(id)) stored)', 'insert into public.n2 (id) values (1) returning v', 'select v from public.n2'],
      ['create table public.n5 (id int, v text generated always as (public.leak_of(id)) stored)', 'create table public.n6 (like public.n5 including all)', 'insert into public.n6 (id) values (2) returning v', 'select v from public.n6'],
    ]
    for (const attack of families) {
      const seen = await run(attack)
      expect(await stored(attack.at(-1)!), attack[0]).toContain(SECRET)
      expect(seen, attack.join('; ')).not.toContain(SECRET)
      expect(seen, attack.join('; ')).not.toMatch(/error/)
    }
    // A default is refused: nothing is made, nothing filled.
    const refused = await run(['create table public.n1 (id int, v text default public.leak())', "select count(*) from pg_class where relname = 'n1'"])
    expect(refused).toMatch(/error: .*DEFAULT, or a partition bound, that is not proven clean/)
    expect(refused).toContain('"count":"0"')
  })

  it('masks a column whose default names a built-in that an earlier statement of the transaction may have shadowed', async () => {
    // After DDL in the open transaction names are distrusted: `DEFAULT now()` in a migration is not
    // refused, but what it fills is masked here, since `lower` may be the one the transaction made.
    const attack = [
      'begin',
      "create function public.lower(varchar) returns text language sql as $$ select string_agg(person, ',') from hr.salaries $$",
      "create table public.sh (id int, v text default lower('a'::varchar), at timestamptz default now())",
      'insert into public.sh (id) values (1) returning v',
      'select v from public.sh',
      'commit',
      'select v from public.sh',
    ]
    // Masking must hold on its own: the policy pack `none` lets the function and its use through.
    const bare = await openPipelineTunnel(db, 'policy: none')
    let seen = ''
    try {
      const c = await bare.client()
      for (const sql of attack) seen += await c.query(sql).then((r) => JSON.stringify(r.rows), (e: Error) => `error: ${e.message}`)
      await c.end()
    } finally {
      await bare.close()
    }
    expect(await stored('select v from public.sh')).toContain(SECRET)
    expect(seen).not.toContain(SECRET)
    expect(seen).not.toMatch(/error/)
    expect(seen).toContain('"v":"[masked]"')
  })

  it('refuses a domain default not proven clean: it fills columns of that domain in any table', async () => {
    await direct((c) => c.query('create domain public.plain as text; create table public.d1 (id int, v public.plain)'))
    for (const sql of ['create domain public.leaky as text default public.leak()', 'alter domain public.plain set default public.leak()', 'alter domain public.plain set default (public.leak_of(1))']) {
      expect(await run([sql]), sql).toMatch(/error: .*domain DEFAULT, or a partition bound, that is not proven clean/)
    }
    expect(await run(['insert into public.d1 (id) values (1) returning v'])).not.toContain(SECRET)
    expect(await stored("select typdefault from pg_type where typname in ('leaky', 'plain')")).toBe('[{"typdefault":null}]')
    // A constant or built-in default fills nothing anyone could not see.
    expect(await run(["alter domain public.plain set default 'none'", "create domain public.stamp as timestamptz default now()", 'insert into public.d1 (id) values (2) returning v'])).toContain('"v":"none"')
  })

  it('refuses a copy into a column added in the open transaction, which the catalog does not know yet, whatever its name', async () => {
    // Its table's other columns being clean says nothing about it: a copy of a sensitive column
    // (INSERT … SELECT) read back before the COMMIT came through in clear. Whether a read would
    // mask the column cannot be said before its type is read, so the copy waits for the COMMIT.
    for (const column of ['note', 'backup_email']) {
      const seen = await run(['begin', `alter table public.b1 add column ${column} text`, `insert into public.b1 (id, ${column}) select id + 10, email from public.customers`, `select ${column} from public.b1 where id = 11`, 'rollback'])
      expect(seen).toMatch(new RegExp(`error: dbgate: masking refuses writing to public\\.b1: it copies values from public\\.customers\\.email into public\\.b1\\.${column}, a column the catalog does not know yet`))
      expect(seen).not.toContain('alice@example.com')
    }
  })

  it('refuses a view default not proven clean: it fills the table under the view', async () => {
    for (const sql of ['alter view public.over alter column body set default public.leak()', 'alter table public.over alter column body set default public.leak()', 'alter view public.over alter column id set default 1, alter column body set default public.leak_of(1)']) {
      expect(await run([sql]), sql).toMatch(/error: .*view's DEFAULT that is not proven clean/)
    }
    expect(await run(['insert into public.over (id) values (1)', 'select body from public.under'])).not.toContain(SECRET)
    expect(await stored('select body from public.under')).not.toContain(SECRET)
    expect(await run(["alter view public.over alter column body set default 'none'", 'insert into public.over (id) values (2) returning body'])).toContain('"body":"none"')
  })

  it('leaves defaults and generated columns of clean values in clear', async () => {
    const seen = await run([
      "create table public.c1 (id int, v text default 'fresh', g text generated always as ('abc' || id::text) stored, at timestamptz default now())",
      'insert into public.c1 (id) values (1) returning v, g',
      "alter table public.c1 add column w text default 'later', alter column v set default upper('x')",
      'insert into public.c1 (id) values (2) returning v, w',
    ])
    // (A new table's generated column that reads its other columns is masked: what fills those is not followed into it.)
    expect(seen).toContain('{"v":"fresh","g":"[masked]"}')
    expect(seen).toContain('{"v":"X","w":"later"}')
  })
})
