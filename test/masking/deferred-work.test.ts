/**
 * Work the server runs later than the statement that asked for it: at COMMIT (or END, COMMIT AND
 * CHAIN, SET CONSTRAINTS … IMMEDIATE) it runs the queries of WITH HOLD cursors to completion and
 * fires deferred constraint triggers, and MOVE runs a cursor's query without sending its rows.
 * Their errors and notices arrive as the later statement's, which reads nothing itself: before,
 * `COMMIT` answered `invalid input syntax for type integer: "Alice Novak"` and a trigger's
 * `bad: Alice Novak` in clear. Each case is run directly first (it must show a seeded value), then
 * through the tunnel `dbgate connect` builds (policy pack none), in the simple and the extended
 * protocol; the client must get the server's error, masked, and the recording must keep no value.
 */
import {mkdtempSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import pg from 'pg'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {StatementData} from '../../src/audit/events.js'
import {SessionReader} from '../../src/audit/read.js'
import {openBucket} from '../../src/bucket/index.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {withClient} from '../helpers/pg.js'
import {leaked, maskingFixture, type MaskingFixture} from './fixture.js'
import {directThenThrough, runSteps, type Step} from '../helpers/steps.js'

const SETUP = `
create function shout(t text) returns text language plpgsql as $$ begin raise notice 'saw %', t; return t; end $$;
create table checked_later (id int) with (autovacuum_enabled = false);
create function check_later() returns trigger language plpgsql as $$
begin
  if new.id = 1 then raise exception 'bad: %', (select full_name from customers where id = 1); end if;
  if new.id = 2 then raise exception using errcode = 'check_violation', message = 'row rejected', constraint = (select full_name from customers where id = 2); end if;
  if new.id = 3 then raise notice 'checked %', (select full_name from customers where id = 3); end if;
  if new.id = 4 then perform (select address from customers where id = 4)::int; end if;
  return new;
end $$;
create constraint trigger checked_later_t after insert on checked_later deferrable initially deferred for each row execute function check_later();
create table parent_rows (id int primary key);
create table child_rows (id int, parent int references parent_rows deferrable initially deferred);
`

const CASES: {label: string; steps: Step[]}[] = [
  {label: 'a WITH HOLD cursor whose query fails on a value, at COMMIT', steps: ['begin', 'declare c cursor with hold for select full_name::int from customers', 'commit']},
  {label: 'a WITH HOLD cursor of a scalar subquery, at END', steps: ['begin', 'declare c cursor with hold for select (select address from customers where id = 2)::int', 'end']},
  {label: 'a WITH HOLD cursor whose function raises notices, at COMMIT', steps: ['begin', 'declare c cursor with hold for select shout(full_name) from customers', 'commit', 'close c']},
  {label: 'a deferred trigger raising a value, at COMMIT', steps: ['begin', 'insert into checked_later values (1)', 'commit']},
  {label: 'a deferred trigger raising a value, at COMMIT AND CHAIN', steps: ['begin', 'insert into checked_later values (1)', 'commit and chain', 'rollback']},
  {label: 'a deferred trigger raising a value, at SET CONSTRAINTS ALL IMMEDIATE', steps: ['begin', 'insert into checked_later values (1)', 'set constraints all immediate', 'rollback']},
  {label: 'a deferred trigger naming a value as the constraint, at COMMIT', steps: ['begin', 'insert into checked_later values (2)', 'commit']},
  {label: 'a deferred trigger noticing a value, at COMMIT', steps: ['begin', 'insert into checked_later values (3)', 'commit']},
  {label: 'a deferred trigger failing on a value, at SET CONSTRAINTS … IMMEDIATE by name', steps: ['begin', 'insert into checked_later values (4)', 'set constraints checked_later_t immediate', 'rollback']},
  {label: 'MOVE of a cursor whose query fails on a value', steps: ['begin', 'declare c cursor for select full_name::int from customers', 'move forward all in c', 'rollback']},
  {label: 'MOVE of a cursor whose function raises notices', steps: ['begin', 'declare c cursor for select shout(address) from customers', 'move absolute 3 in c', 'rollback']},
  {label: 'COMMIT as a prepared statement of the extended protocol', steps: ['begin', 'declare c cursor with hold for select full_name::int from customers', {text: 'commit', name: 'commit_p'}]},
  {label: 'MOVE as a prepared statement of the extended protocol', steps: ['begin', 'declare c cursor for select address::int from customers', {text: 'move forward all in c', name: 'move_p'}, 'rollback']},
  {label: 'a WITH HOLD cursor declared in the extended protocol, at its Sync', steps: [{text: 'declare c cursor with hold for select full_name::int from customers', name: 'declare_p'}]},
]

describe('masking: errors and notices of work the server runs at COMMIT or MOVE', () => {
  let fx: MaskingFixture
  let tunnel: PipelineTunnel
  let bucketUrl: string

  beforeAll(async () => {
    fx = await maskingFixture()
    await withClient(fx.db.url, (c) => c.query(SETUP))
    bucketUrl = `file://${mkdtempSync(path.join(tmpdir(), 'dbgate-deferred-'))}`
    tunnel = await openPipelineTunnel(fx.db, 'policy: none', {top: `bucket: ${bucketUrl}`})
  })

  afterAll(async () => {
    await tunnel?.close()
    await fx?.close()
  })

  it.each(CASES)('masks $label', async ({steps}) => {
    const direct = new pg.Client({connectionString: fx.db.url})
    await direct.connect()
    const {before, after} = await directThenThrough(direct, () => tunnel.client(), steps)
    // Not vacuous: the server itself says the value.
    expect(leaked(before.seen, fx.secrets)).not.toEqual([])
    expect(leaked(after.seen, fx.secrets)).toEqual([])
    // The client still learns that, and how, the statement failed.
    expect(after.code).toBe(before.code)
  })

  it('keeps a deferred foreign key violation as the server wrote it, also in a transaction that read sensitive data', async () => {
    const c = await tunnel.client()
    const alone = await runSteps(c, ['begin', 'insert into child_rows values (1, 999)', 'commit'])
    const afterRead = await runSteps(c, ['begin', 'insert into child_rows values (1, 999)', 'select full_name from customers where id = 1', 'commit'])
    // And once a transaction that read sensitive data has ended, the next one is its own again.
    const next = await runSteps(c, ['begin', 'insert into child_rows values (1, 998)', 'commit'])
    await c.end()
    for (const [o, key] of [[alone, 999], [afterRead, 999], [next, 998]] as const) {
      expect(o.code).toBe('23503')
      expect(o.seen).toContain('violates foreign key constraint \\"child_rows_parent_fkey\\"')
      expect(o.seen).toContain(`Key (parent)=(${key}) is not present in table \\"parent_rows\\".`)
    }
    expect(leaked(afterRead.seen, fx.secrets)).toEqual([])
  })

  it('records no value of them', async () => {
    await tunnel.close()
    const reader = new SessionReader(openBucket(bucketUrl), mkdtempSync(path.join(tmpdir(), 'dbgate-cache-')))
    const sessions = await reader.list()
    const statements: StatementData[] = []
    for (const s of sessions) statements.push(...(await reader.loadSummary(s)).events.filter((e) => e.type === 'statement').map((e) => e.data as StatementData))
    const commits = statements.filter((s) => /^(commit|end|set constraints)/.test(s.sql) && s.error)
    expect(commits.length).toBeGreaterThan(0)
    expect(leaked(JSON.stringify(statements), fx.secrets)).toEqual([])
  })
})
