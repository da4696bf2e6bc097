/**
 * A statement judged before another session's change commits, and run after it. Session B sends a
 * read that policy allows against the committed catalog; it waits on a lock session A holds; A
 * makes a change (puts hr.salaries under the table B reads, replaces the function B calls) and
 * commits. Without a gate, B's read then ran with what the commit made and returned hr.salaries'
 * rows past a rule on `hr.*`: a verdict cannot be taken back once the statement is on the server.
 * Now a commit of a change waits for the other sessions' statements judged before it (refused
 * after `tunnel.changeWait`, so the change is not committed), and their statements wait for a
 * commit in flight and are judged after it. Every way of committing is tried.
 */
import pg from 'pg'
import {serialize} from 'pg-protocol'
import {afterAll, afterEach, beforeAll, describe, expect, it} from 'vitest'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {codes, errorOf} from '../helpers/raw-client.js'

type Refusal = Error & {code?: string; detail?: string; hint?: string}

const SECRET = 'GATED-PAYROLL-SECRET'
const WAIT = '1s'
const LOCK_ID = 77_001

describe('a change committed while another session runs a statement judged before it', () => {
  let db: UpstreamInfo
  let t: PipelineTunnel
  const direct = <T>(fn: (c: pg.Client) => Promise<T>) => withClient(db.url, fn)
  let n = 0

  beforeAll(async () => {
    db = await createTestDatabase()
    await direct((c) =>
      c.query(`
        create schema hr;
        create table hr.salaries (id int, person text, amount int);
        insert into hr.salaries select g, '${SECRET} ' || g, g from generate_series(1, 5) g;
      `),
    )
    // DDL, writes and DO blocks are allowed: only the rule on hr reads stands between B and the rows.
    t = await openPipelineTunnel(db, RULES)
  }, 120_000)
  afterAll(async () => {
    await t?.close()
  })

  const RULES = [
    `tunnel: {changeWait: ${WAIT}}`,
    'rules:',
    '  - id: no-hr-reads',
    '    match: {class: read, tables: ["hr.*"]}',
    '    action: deny',
    '  - id: no-locks',
    '    match: {functions: [pg_advisory_lock]}',
    '    action: deny',
    '  - id: ddl',
    '    match: {class: ddl}',
    '    action: allow',
    '  - id: writes',
    '    match: {class: write}',
    '    action: allow',
    '  - id: admin',
    '    match: {class: admin}',
    '    action: allow',
    '  - id: code',
    '    match: {class: opaque}',
    '    action: allow',
  ].join('\n')

  /** A fresh, empty public.p_<i>, and a function public.f_<i>(int) that reads it. */
  async function fresh(): Promise<{parent: string; fn: string}> {
    const i = ++n
    await direct((d) =>
      d.query(`
        create table public.p_${i} (id int, person text, amount int);
        create function public.f_${i}(int) returns text language plpgsql stable as $f$ begin perform 1 from public.p_${i}; return 'ok'; end $f$;
      `),
    )
    return {parent: `public.p_${i}`, fn: `public.f_${i}`}
  }

  const undo = () =>
    direct((d) => d.query(`do $$ declare r record; begin for r in select inhparent::regclass::text as p from pg_inherits where inhrelid = 'hr.salaries'::regclass loop execute 'alter table hr.salaries no inherit ' || r.p; end loop; end $$`))

  const inherited = (parent: string) => direct(async (d) => (await d.query(`select count(*)::int as n from pg_inherits where inhrelid = 'hr.salaries'::regclass and inhparent = '${parent}'::regclass`)).rows[0].n as number)

  async function run(c: pg.Client, sql: string): Promise<string | Refusal> {
    return c.query(sql).then(
      (r) => JSON.stringify((Array.isArray(r) ? r : [r]).map((x: pg.QueryResult) => x.rows)),
      (e: Refusal) => e,
    )
  }

  /** Resolves once a session of the test database waits for a lock: a statement is on the server, judged. */
  async function someoneWaits(): Promise<void> {
    for (let k = 0; k < 500; k++) {
      const waiting = await direct(async (d) => (await d.query(`select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`)).rows[0].n as number)
      if (waiting > 0) return
      await new Promise((r) => setTimeout(r, 20))
    }
    throw new Error('no session of the test database waits for a lock')
  }

  /**
   * Session `a`'s `ALTER TABLE hr.salaries INHERIT parent`, sent while a connection outside the
   * tunnel holds a lock on hr.salaries: its commit is in flight until `release()`.
   */
  async function changeHeldUp(a: pg.Client, parent: string): Promise<{held: Promise<string | Refusal>; release(): Promise<void>}> {
    const blocker = new pg.Client({connectionString: db.url})
    await blocker.connect()
    blockers.push(blocker)
    await blocker.query('begin')
    await blocker.query('lock table hr.salaries in access share mode')
    const held = run(a, `alter table hr.salaries inherit ${parent}`)
    await someoneWaits()
    return {held, release: () => blocker.query('commit').then(() => undefined)}
  }
  /** Ended after each test, whatever it did: a lock left held would stall the next one. */
  const blockers: pg.Client[] = []
  afterEach(async () => {
    await Promise.all(blockers.splice(0).map((c) => c.end().catch(() => {})))
  })

  // The ways A commits the change its open transaction made, while B's read waits on A's lock.
  const COMMITS: Record<string, (parent: string) => string> = {
    'COMMIT': () => 'commit',
    'END': () => 'end',
    'COMMIT AND CHAIN': () => 'commit and chain',
    'the change and the COMMIT in one text': (parent) => `alter table hr.salaries no inherit ${parent}; alter table hr.salaries inherit ${parent}; commit`,
    'COMMIT through the extended protocol': () => 'commit',
  }

  it("refuses the commit of a table put under the one another session's waiting read reads, and the read returns no hr rows", async () => {
    for (const [shape, commit] of Object.entries(COMMITS)) {
      const {parent} = await fresh()
      const raw = await t.raw()
      const b = await t.client()
      /** A's statements, on a wire-level session: a refusal as its error fields, else the reply codes. */
      const a = async (sql: string, extended = false): Promise<string | Refusal> => {
        raw.send(...(extended ? [serialize.parse({text: sql}), serialize.bind({}), serialize.execute({}), serialize.sync()] : [serialize.query(sql)]))
        const replies = await raw.untilReady()
        const e = errorOf(replies)
        return e ? Object.assign(new Error(e.message), {code: e.code, hint: e.hint}) : codes(replies)
      }
      try {
        expect(await a('begin'), shape).toBe('CZ')
        expect(await a(`lock table ${parent} in access exclusive mode`), shape).toBe('CZ')
        const read = run(b, `select * from ${parent}`)
        await someoneWaits()
        expect(await a(`alter table hr.salaries inherit ${parent}`), shape).toBe('CZ')
        const refused = await a(commit(parent), shape.includes('extended'))
        expect(typeof refused === 'string' ? refused : refused.code, shape).toBe('55P03')
        expect((refused as Refusal).message, shape).toContain('tunnel.changeWait')
        expect(await a('rollback'), shape).toBe('CZ')
        const rows = await read
        expect(typeof rows === 'string' ? rows : rows.message, shape).not.toContain(SECRET)
        expect(rows, shape).toBe('[[]]')
        expect(await inherited(parent), shape).toBe(0)
      } finally {
        raw.end()
        await b.end()
        await undo()
      }
    }
  })

  it('refuses the commit of a function body replaced under a call that waits on the committing session', async () => {
    const {parent, fn} = await fresh()
    const a = await t.client()
    const b = await t.client()
    try {
      await a.query('begin')
      await a.query(`lock table ${parent} in access exclusive mode`)
      // The first call waits on the lock; the second would compile the body as it is then.
      const calls = run(b, `select ${fn}(g) from generate_series(1, 3) g`)
      await someoneWaits()
      // The new body takes an advisory lock, which a rule denies.
      expect(await run(a, `create or replace function ${fn}(int) returns text language plpgsql volatile as $f$ begin perform pg_advisory_lock(${LOCK_ID}); return (select string_agg(person, ',') from hr.salaries); end $f$`)).toBe('[[]]')
      const refused = await run(a, 'commit')
      expect(typeof refused === 'string' ? refused : refused.code).toBe('55P03')
      await a.query('rollback')
      const rows = await calls
      expect(typeof rows === 'string' ? rows : rows.message).not.toContain(SECRET)
      // Three calls answered (masking shows a function's value of unproven origin masked).
      expect(typeof rows === 'string' ? JSON.parse(rows)[0].length : rows.message).toBe(3)
      expect(await direct(async (d) => (await d.query(`select count(*)::int as n from pg_locks where locktype = 'advisory' and objid = ${LOCK_ID}`)).rows[0].n)).toBe(0)
    } finally {
      await a.end()
      await b.end()
    }
  })

  it('commits a change once the statements judged before it have ended, and judges those sent during the commit after it', async () => {
    const {parent} = await fresh()
    const a = await t.client()
    const b = await t.client()
    try {
      // A statement of B's that runs for a while: A's change waits for it, and is then committed.
      const slow = run(b, 'select pg_sleep(0.4)')
      await new Promise((r) => setTimeout(r, 50))
      const change = run(a, `alter table hr.salaries inherit ${parent}`)
      expect(await slow).toBe('[[{"pg_sleep":""}]]')
      expect(await change).toBe('[[]]')
      expect(await inherited(parent)).toBe(1)
      await undo()
      // A's change waits on a lock outside the tunnel, so its commit is in flight for a while: B's
      // read, sent meanwhile, waits for it and is judged against what it made.
      const {held, release} = await changeHeldUp(a, parent)
      const read = run(b, `select * from ${parent}`)
      await new Promise((r) => setTimeout(r, 200))
      await release()
      expect(await held).toBe('[[]]')
      const answer = await read
      expect(typeof answer === 'string' ? answer : answer.code).toBe('42501')
      expect(typeof answer === 'string' ? answer : answer.message).not.toContain(SECRET)
    } finally {
      await a.end()
      await b.end()
      await undo()
    }
  })

  it('judges again an Execute of a portal bound before the commit, once the commit ends', async () => {
    const {parent} = await fresh()
    const a = await t.client()
    const raw = await t.raw()
    try {
      raw.send(serialize.query('begin'))
      await raw.untilReady()
      raw.send(serialize.parse({text: `select * from ${parent}`}), serialize.bind({portal: 'p'}), serialize.flush())
      await raw.next()
      await raw.next()
      const {held, release} = await changeHeldUp(a, parent)
      raw.send(serialize.execute({portal: 'p'}), serialize.sync())
      await new Promise((r) => setTimeout(r, 200))
      await release()
      expect(await held).toBe('[[]]')
      const replies = await raw.untilReady()
      expect(errorOf(replies)?.code).toBe('42501')
      expect(replies.map((m) => m.body.toString('latin1')).join('')).not.toContain(SECRET)
    } finally {
      raw.end()
      await a.end()
      await undo()
    }
  })

  it('refuses a statement that waited longer than tunnel.changeWait for a commit, and never holds ROLLBACK', async () => {
    const {parent} = await fresh()
    const a = await t.client()
    const b = await t.client()
    try {
      await b.query('begin')
      const {held, release} = await changeHeldUp(a, parent)
      const refused = await run(b, 'select 1')
      expect(typeof refused === 'string' ? refused : refused.code).toBe('55P03')
      expect((refused as Refusal).message).toContain(`waited ${WAIT} (targets.app.tunnel.changeWait)`)
      // ROLLBACK runs no code: it is how a session lets go of its locks, and it goes at once.
      expect(await run(b, 'rollback')).toBe('[[]]')
      await release()
      expect(await held).toBe('[[]]')
      expect(await run(b, 'select 1 as one')).toBe('[[{"one":1}]]')
    } finally {
      await a.end()
      await b.end()
      await undo()
    }
  })

  it('reads the catalog again when a session that committed a change goes away before its reply', async () => {
    const {parent} = await fresh()
    const raw = await t.raw()
    const b = await t.client()
    try {
      // B's read first, so the relation's entry is kept from before the change.
      expect(await run(b, `select * from ${parent}`)).toBe('[[]]')
      raw.send(serialize.query('begin'))
      await raw.untilReady()
      // A change without a DDL tag: nothing but the commit says that the catalog changed.
      raw.send(serialize.query(`do $$ begin alter table hr.salaries inherit ${parent}; end $$`))
      await raw.untilReady()
      // The COMMIT runs at once; the client leaves while the rest of the text runs, so no reply to it ever comes.
      raw.send(serialize.query('commit; select pg_sleep(0.5)'))
      await new Promise((r) => setTimeout(r, 200))
      raw.end()
      const after = await run(b, `select * from ${parent}`)
      expect(await inherited(parent)).toBe(1)
      expect(typeof after === 'string' ? after : after.message).not.toContain(SECRET)
      expect(typeof after === 'string' ? after : after.code).toBe('42501')
    } finally {
      await b.end()
      await undo()
    }
  })

  it('has another tunnel in front of the same database read the catalog again when a change is committed', async () => {
    // Another person's gateway pipeline, another `dbgate connect`: each keeps what it read of the catalog.
    const other = await openPipelineTunnel(db, RULES)
    const {parent} = await fresh()
    const a = await t.client()
    const b = await other.client()
    try {
      expect(await run(b, `select * from ${parent}`)).toBe('[[]]')
      // A change without a DDL tag, committed at once.
      expect(await run(a, `do $$ begin alter table hr.salaries inherit ${parent}; end $$`)).toBe('[[]]')
      const after = await run(b, `select * from ${parent}`)
      expect(typeof after === 'string' ? after : after.message).not.toContain(SECRET)
      expect(typeof after === 'string' ? after : after.code).toBe('42501')
    } finally {
      await a.end()
      await other.close()
      await undo()
    }
  })

  it('lets other sessions run while a change waits uncommitted in an open transaction', async () => {
    const {parent} = await fresh()
    const a = await t.client()
    const b = await t.client()
    try {
      await a.query('begin')
      expect(await run(a, `alter table hr.salaries inherit ${parent}`)).toBe('[[]]')
      // Nothing of A's change is visible to B: B's statements are not held up by it.
      expect(await run(b, 'select 2 as two')).toBe('[[{"two":2}]]')
      expect(await run(b, `select count(*)::int as n from ${parent}`)).toBe('[[{"n":0}]]')
      expect(await run(a, 'rollback')).toBe('[[]]')
    } finally {
      await a.end()
      await b.end()
      await undo()
    }
  })
})
