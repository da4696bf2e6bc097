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
import {withClient, type UpstreamInfo} from '../helpers/pg.js'
import {payrollDatabase, uninheritPayroll} from '../helpers/payroll.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {codes, errorOf, type RawClient} from '../helpers/raw-client.js'
import {waitFor} from '../helpers/wait.js'

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
    db = await payrollDatabase(SECRET)
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

  const undo = () => uninheritPayroll(db)

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

  it('treats a change as committing once an extended-protocol Execute may have ended the block the last ReadyForQuery reported', async () => {
    // ReadyForQuery said "in a block"; an Execute of ROLLBACK (or COMMIT) answered without a Sync
    // ended it, so the change after it runs in an implicit transaction that the segment's Sync (or
    // a simple query sent within it) commits. Judged as inside the block it was let through as
    // not committing, past the read B had waiting: that read then returned hr.salaries' rows.
    const LEAVES = ['rollback', 'commit', 'end', 'abort']
    const COMMITTED_BY: Record<string, Buffer[]> = {'its Sync': [serialize.sync()], 'a simple query within the segment': [serialize.query('select 1'), serialize.sync()]}
    for (const leave of LEAVES) {
      for (const [by, committing] of Object.entries(COMMITTED_BY)) {
        const shape = `${leave}, then ${by}`
        const {parent} = await fresh()
        // B's read waits on a lock held outside the tunnel, on a table it reads after the parent:
        // it is in flight, judged before the change, and plans the parent's children once it has it.
        const gate = `${parent}_gate`
        await direct((d) => d.query(`create table ${gate} (like ${parent})`))
        const blocker = new pg.Client({connectionString: db.url})
        await blocker.connect()
        blockers.push(blocker)
        await blocker.query('begin')
        await blocker.query(`lock table ${gate} in access exclusive mode`)
        const b = await t.client()
        const read = run(b, `select * from ${parent} union all select * from ${gate}`)
        await someoneWaits()
        const raw = await t.raw()
        try {
          raw.send(serialize.query('begin'))
          expect(codes(await raw.untilReady()), shape).toBe('CZ')
          raw.send(serialize.parse({text: leave}), serialize.bind({}), serialize.execute({}), serialize.flush())
          const left = [await raw.next(), await raw.next(), await raw.next()]
          expect(left.map((m) => m.code).join(''), shape).toBe('12C')
          // Every reply is in: the change is judged with nothing in flight.
          raw.send(serialize.parse({text: `alter table hr.salaries inherit ${parent}`}), serialize.flush())
          const parsed = await raw.next()
          if (parsed.code === '1') raw.send(serialize.bind({}), serialize.execute({}), ...committing)
          else raw.send(...committing)
          const replies = [parsed, ...(await raw.untilReady())]
          if (by !== 'its Sync' && parsed.code === '1') replies.push(...(await raw.untilReady()))
          expect(errorOf(replies)?.code, `${shape}: ${codes(replies)}`).toBe('55P03')
          expect(errorOf(replies)?.message, shape).toContain('tunnel.changeWait')
          await blocker.query('commit')
          const rows = await read
          expect(typeof rows === 'string' ? rows : rows.message, shape).not.toContain(SECRET)
          expect(await inherited(parent), shape).toBe(0)
        } finally {
          raw.end()
          await b.end()
          await undo()
        }
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
      expect(await direct(async (d) => (await d.query(`select count(*)::int as n from pg_locks where locktype = 'advisory' and database = (select oid from pg_database where datname = current_database()) and objid = ${LOCK_ID}`)).rows[0].n)).toBe(0)
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
      // B reads once the server has committed, not after a fixed pause: on a loaded machine the
      // COMMIT may not have reached the server yet, and B's read would rightly see the old catalog.
      await waitFor(async () => (await inherited(parent)) === 1, 'the server has run the COMMIT')
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

  it('keeps the others waiting while the server still runs the commit of a client that hung up, and judges them after it', async () => {
    // How A leaves while the server runs its text: the socket closes, or a Terminate message.
    const LEAVES: Record<string, (raw: RawClient) => void> = {
      'the client closes its socket': (raw) => raw.end(),
      'the client sends Terminate': (raw) => raw.send(Buffer.from([0x58, 0, 0, 0, 4])),
    }
    for (const [shape, leave] of Object.entries(LEAVES)) {
      const {parent} = await fresh()
      const a = await t.raw()
      const b = await t.client()
      try {
        for (const sql of ['begin', `lock table ${parent} in access exclusive mode`, `alter table hr.salaries inherit ${parent}`]) {
          a.send(serialize.query(sql))
          expect(codes(await a.untilReady()), shape).toBe('CZ')
        }
        // The server goes on with this text after the client has gone, and commits the change.
        a.send(serialize.query('select pg_sleep(1.5); commit'))
        await new Promise((r) => setTimeout(r, 200))
        leave(a)
        await new Promise((r) => setTimeout(r, 100))
        // B's read would wait on A's lock and run after A's commit: it waits in the tunnel instead.
        const waited = await run(b, `select * from ${parent}`)
        expect(typeof waited === 'string' ? waited : waited.code, shape).toBe('55P03')
        // Once the server has ended A's session, the change is committed and B's read is judged against it.
        for (let k = 0; k < 100 && (await inherited(parent)) === 0; k++) await new Promise((r) => setTimeout(r, 50))
        expect(await inherited(parent), shape).toBe(1)
        const judged = await run(b, `select * from ${parent}`)
        expect(typeof judged === 'string' ? judged : judged.code, shape).toBe('42501')
      } finally {
        a.end()
        await b.end()
        await undo()
      }
    }
  })

  it("refuses a commit while the server still runs a statement of a session whose client hung up, which waits on the committing session's lock", async () => {
    const {parent, fn} = await fresh()
    const sequence = `public.ran_${n}`
    await direct((d) => d.query(`create sequence ${sequence}; insert into ${parent} values (1, 'x', 1)`))
    const a = await t.client()
    const b = await t.raw()
    try {
      await a.query('begin')
      await a.query(`lock table ${parent} in access exclusive mode`)
      // B's call waits on A's lock; its client then goes away, but the server still runs it.
      b.send(serialize.query(`select ${fn}(g) from ${parent}, generate_series(1, 3) g`))
      await someoneWaits()
      b.end()
      await new Promise((r) => setTimeout(r, 100))
      // A replaces the body B's waiting call runs (a sequence moves: an effect no transaction undoes).
      expect(await run(a, `create or replace function ${fn}(int) returns text language plpgsql stable as $f$ begin perform nextval('${sequence}'); return 'changed'; end $f$`)).toBe('[[]]')
      const refused = await run(a, 'commit')
      expect(typeof refused === 'string' ? refused : refused.code).toBe('55P03')
      expect((refused as Refusal).message).toContain('client went away')
      await a.query('rollback')
      // B's statement ran with the body it was judged against.
      for (let k = 0; k < 100 && (await direct(async (d) => (await d.query(`select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`)).rows[0].n as number)) > 0; k++) await new Promise((r) => setTimeout(r, 20))
      expect(await direct(async (d) => (await d.query(`select is_called from ${sequence}`)).rows[0].is_called)).toBe(false)
    } finally {
      b.end()
      await a.end()
    }
  })

  describe('a cursor opened before the commit, whose query runs after it', () => {
    /** Advisory lock ids the replaced bodies take: a rule denies pg_advisory_lock, so a lock held means a denied body ran. */
    let lockId = LOCK_ID + 1000
    const locksHeld = (id: number) => direct(async (d) => (await d.query(`select count(*)::int as n from pg_locks where locktype = 'advisory' and database = (select oid from pg_database where datname = current_database()) and objid = ${id}`)).rows[0].n as number)
    /** f's body replaced by one that takes a denied lock and reads hr.salaries (a call of it now is refused). */
    const replacement = (fn: string, id: number) =>
      `create or replace function ${fn}(int) returns text language plpgsql stable as $f$ begin perform pg_advisory_lock(${id}); return (select string_agg(person, ',') from hr.salaries); end $f$`
    /** A's statements and B's, on wire-level sessions: a refusal as its SQLSTATE, else the reply codes. */
    const wire = async (raw: RawClient, ...messages: Buffer[]): Promise<string> => {
      raw.send(...messages)
      const replies = await raw.untilReady()
      const e = errorOf(replies)
      expect(replies.map((m) => m.body.toString('latin1')).join('')).not.toContain(SECRET)
      return e ? `E${e.code ?? ''}` : codes(replies)
    }
    const q = (raw: RawClient, sql: string) => wire(raw, serialize.query(sql))

    // Ways B opens a cursor in its transaction, each judged against f's body as it was.
    const OPENS: Record<string, (fn: string, i: number) => {setup?: string; open: string}> = {
      'DECLARE': (fn) => ({open: `declare c cursor for select ${fn}(g) from generate_series(1, 3) g`}),
      'DECLARE … SCROLL': (fn) => ({open: `declare c scroll cursor for select ${fn}(g) from generate_series(1, 3) g`}),
      'a refcursor a function opens': (fn, i) => ({
        setup: `create function public.opener_${i}() returns refcursor language plpgsql stable as $o$ declare c refcursor := 'c'; begin open c for select ${fn}(g) from generate_series(1, 3) g; return c; end $o$`,
        open: `select public.opener_${i}()`,
      }),
    }
    // Ways B then runs the cursor's query, after A's change to f committed.
    const RUNS: Record<string, (raw: RawClient) => Promise<string>> = {
      'FETCH ALL': (raw) => q(raw, 'fetch all from c'),
      'FETCH 1': (raw) => q(raw, 'fetch 1 from c'),
      'MOVE ALL': (raw) => q(raw, 'move all in c'),
      'FETCH in a text with other statements': (raw) => q(raw, 'select 1; fetch forward 2 from c'),
      'FETCH through Parse, Bind and Execute': (raw) => wire(raw, serialize.parse({text: 'fetch all from c'}), serialize.bind({}), serialize.execute({}), serialize.sync()),
      'a protocol Execute of the cursor': (raw) => wire(raw, serialize.execute({portal: 'c'}), serialize.sync()),
    }

    it('refuses to run it once another session committed a change since the transaction began', async () => {
      for (const [opened, how] of Object.entries(OPENS)) {
        for (const [ran, runIt] of Object.entries(RUNS)) {
          const shape = `${opened}, then ${ran}`
          const {fn} = await fresh()
          const id = ++lockId
          const {setup, open} = how(fn, n)
          if (setup) await direct((d) => d.query(setup))
          const a = await t.client()
          const b = await t.raw()
          try {
            expect(await q(b, 'begin'), shape).toBe('CZ')
            expect(await q(b, open), shape).toMatch(/^T?D?CZ$/)
            expect(await run(a, replacement(fn, id)), shape).toBe('[[]]')
            // A's change is committed and judged: a call of the new body is refused.
            expect(await run(a, `select ${fn}(1)`).then((r) => (typeof r === 'string' ? r : r.code)), shape).toBe('42501')
            // (A protocol Execute of a portal the tunnel never saw opened is refused as unknown.)
            expect(await runIt(b), shape).toBe(opened.includes('refcursor') && ran.includes('protocol') ? 'E34000' : 'E55000')
            expect(await locksHeld(id), shape).toBe(0)
            expect(await q(b, 'rollback'), shape).toBe('CZ')
            // Opened again, the cursor is judged against the body as changed.
            expect(await q(b, 'begin'), shape).toBe('CZ')
            expect(await q(b, open), shape).toBe('E42501')
            expect(await q(b, 'rollback'), shape).toBe('CZ')
            expect(await locksHeld(id), shape).toBe(0)
          } finally {
            b.end()
            await a.end()
          }
        }
      }
    })

    it('counts a cursor opened by a Bind and Execute of a statement judged before, which are not judged again', async () => {
      // A hold cursor declared by a prepared statement, in an implicit transaction its Sync commits.
      {
        const {fn} = await fresh()
        const id = ++lockId
        const declare = `declare c cursor with hold for select ${fn}(g) from generate_series(1, 3) g`
        const a = await t.client()
        const b = await t.raw()
        try {
          // What the statement calls is looked up first: nothing changes before its Bind, so the Bind is not judged again.
          expect(await run(a, `${declare}; close c`)).toBe('[[],[]]')
          expect(await wire(b, serialize.parse({name: 'hold', text: declare}), serialize.sync())).toBe('1Z')
          b.send(serialize.bind({statement: 'hold'}), serialize.execute({}), serialize.flush())
          expect(codes([await b.next(), await b.next()])).toBe('2C')
          const refused = await run(a, replacement(fn, id))
          expect(typeof refused === 'string' ? refused : refused.code).toBe('55P03')
          expect(await wire(b, serialize.sync())).toBe('Z')
          expect(await locksHeld(id)).toBe(0)
        } finally {
          b.end()
          await a.end()
        }
      }
      // A refcursor a function opens, from a prepared call, in an implicit transaction; then a FETCH.
      {
        const {fn} = await fresh()
        const id = ++lockId
        await direct((d) => d.query(`create function public.opener_${n}() returns refcursor language plpgsql stable as $o$ declare c refcursor := 'c'; begin open c for select ${fn}(g) from generate_series(1, 3) g; return c; end $o$`))
        const a = await t.client()
        const b = await t.raw()
        try {
          // (Its value is masked: a user function's result is of unproven origin.)
          expect(await run(a, `select public.opener_${n}() as c`)).toMatch(/^\[\[\{"c":/)
          expect(await wire(b, serialize.parse({name: 'open', text: `select public.opener_${n}()`}), serialize.sync())).toBe('1Z')
          b.send(serialize.bind({statement: 'open'}), serialize.execute({}), serialize.flush())
          expect(codes([await b.next(), await b.next(), await b.next()])).toBe('2DC')
          expect(await run(a, replacement(fn, id))).toBe('[[]]')
          expect(await wire(b, serialize.parse({text: 'fetch all from c'}), serialize.bind({}), serialize.execute({}), serialize.sync())).toBe('E55000')
          expect(await locksHeld(id)).toBe(0)
        } finally {
          b.end()
          await a.end()
        }
      }
    })

    // Ways B's transaction commits a cursor WITH HOLD, which runs its query to the end.
    const HOLDS: Record<string, (raw: RawClient, declare: string) => Promise<{before: string; commit: () => Promise<string>}>> = {
      'COMMIT': async (raw, declare) => ({before: (await q(raw, 'begin')) + (await q(raw, declare)), commit: () => q(raw, 'commit')}),
      'END': async (raw, declare) => ({before: (await q(raw, 'begin')) + (await q(raw, declare)), commit: () => q(raw, 'end')}),
      'COMMIT AND CHAIN': async (raw, declare) => ({before: (await q(raw, 'begin')) + (await q(raw, declare)), commit: async () => (await q(raw, 'commit and chain')) + (await q(raw, 'commit'))}),
      'COMMIT after ROLLBACK TO SAVEPOINT': async (raw, declare) => ({
        before: (await q(raw, 'begin')) + (await q(raw, declare)) + (await q(raw, 'savepoint s')) + (await q(raw, 'rollback to s')),
        commit: () => q(raw, 'commit'),
      }),
      'COMMIT of a text that committed one transaction and declared in the next': async (raw, declare) => ({
        before: await q(raw, `begin; declare earlier cursor with hold for select 1; commit; begin; ${declare}`),
        commit: () => q(raw, 'commit'),
      }),
      'the Sync of an implicit transaction': async (raw, declare) => {
        raw.send(serialize.parse({text: declare}), serialize.bind({}), serialize.execute({}), serialize.flush())
        const replies = [await raw.next(), await raw.next(), await raw.next()]
        return {before: codes(replies), commit: () => wire(raw, serialize.sync())}
      },
    }

    it('refuses the commit of a change while another session holds a cursor WITH HOLD whose query its COMMIT runs', async () => {
      for (const [shape, hold] of Object.entries(HOLDS)) {
        const {fn} = await fresh()
        const id = ++lockId
        const a = await t.client()
        const b = await t.raw()
        try {
          const {before, commit} = await hold(b, `declare c cursor with hold for select ${fn}(g) from generate_series(1, 3) g`)
          expect(before, shape).toMatch(/^(C+Z)+$|^12C$/)
          const refused = await run(a, replacement(fn, id))
          expect(typeof refused === 'string' ? refused : refused.code, shape).toBe('55P03')
          expect((refused as Refusal).message, shape).toContain('WITH HOLD')
          expect(await commit(), shape).toMatch(/^(CZ)+$|^Z$/)
          expect(await locksHeld(id), shape).toBe(0)
          // The cursor ran its query at the COMMIT: it runs nothing more, and A's change goes through now.
          expect(await run(a, replacement(fn, id)), shape).toBe('[[]]')
          expect(await q(b, 'fetch all from c'), shape).toBe('TDDDCZ')
          expect(await locksHeld(id), shape).toBe(0)
        } finally {
          b.end()
          await a.end()
        }
      }
    })
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

  describe('a session that changed the schema in an implicit transaction and holds back its Sync', () => {
    /** Reads A's replies until `n` CommandCompletes (no ReadyForQuery comes without a Sync): their codes. */
    async function completions(raw: RawClient, n: number): Promise<string> {
      const seen: string[] = []
      while (seen.filter((c) => c === 'C').length < n) {
        const m = await raw.next()
        seen.push(m.code)
        if (m.code === 'E') break
      }
      return seen.join('')
    }
    /** A's change in the extended protocol, answered, its implicit transaction left open. */
    const change = (sql: string) => [serialize.parse({text: sql}), serialize.bind({}), serialize.execute({})]

    it('lets the other sessions run meanwhile, however it stops short, and commits at its Sync', async () => {
      // How A stops short of the Sync: a Flush has the server answer; with nothing at all, the tunnel asks for the answer itself.
      const STOPS: Record<string, Buffer[]> = {'a Flush': [serialize.flush()], 'nothing after the Execute': []}
      for (const [shape, stop] of Object.entries(STOPS)) {
        const {parent} = await fresh()
        const a = await t.raw()
        const b = await t.client()
        try {
          a.send(...change(`alter table hr.salaries inherit ${parent}`), ...stop)
          expect(await completions(a, 1), shape).toBe('12C')
          // B was held while A's change might commit; once A has stopped short of its Sync, B goes on.
          expect(await run(b, 'select 2 as two'), shape).toBe('[[{"two":2}]]')
          expect(await run(b, `select count(*)::int as n from ${parent}`), shape).toBe('[[{"n":0}]]')
          a.send(serialize.sync())
          expect(codes(await a.untilReady()), shape).toBe('Z')
          expect(await inherited(parent), shape).toBe(1)
          // B's next read is judged against the committed change.
          const judged = await run(b, `select * from ${parent}`)
          expect(typeof judged === 'string' ? judged : judged.code, shape).toBe('42501')
        } finally {
          a.end()
          await b.end()
          await undo()
        }
      }
    })

    it("closes it rather than commit while another session's read judged before waits on its lock, so the read returns no hr rows", async () => {
      // What may commit A's change: its Sync, or an Execute of a COMMIT it parsed before stopping.
      const COMMIT_POINTS: Record<string, {before: Buffer[]; commit: Buffer[]}> = {
        'the Sync': {before: [], commit: [serialize.sync()]},
        'an Execute of a COMMIT parsed before': {before: [serialize.parse({name: 'c', text: 'commit'})], commit: [serialize.bind({statement: 'c', portal: 'pc'}), serialize.execute({portal: 'pc'}), serialize.sync()]},
      }
      for (const [shape, point] of Object.entries(COMMIT_POINTS)) {
        const {parent} = await fresh()
        const a = await t.raw()
        const b = await t.client()
        try {
          // The default's change locks the parent against B's read; the INHERIT puts hr.salaries under it.
          a.send(...change(`alter table ${parent} alter column amount set default 0`), ...change(`alter table hr.salaries inherit ${parent}`), ...point.before, serialize.flush())
          expect(await completions(a, 2), shape).toMatch(/^12C12C1?$/)
          expect(await run(b, 'select 2 as two'), shape).toBe('[[{"two":2}]]')
          // Judged against the committed catalog (nothing under the parent), sent, and waiting on A's lock.
          const read = run(b, `select * from ${parent}`)
          await someoneWaits()
          a.send(...point.commit)
          // Refused either way: the Sync (or an Execute of the COMMIT) closes the connection; a Bind
          // of the COMMIT judged again is refused in the implicit transaction, which its Sync then
          // rolls back.
          for (let m = await a.next().catch(() => undefined); m && m.code !== 'Z'; m = await a.next().catch(() => undefined));
          const ended = errorOf(a.messages)
          expect(ended?.code, shape).toBe('55P03')
          expect(ended?.message, shape).toMatch(/the connection is closed, so the change is rolled back|was not sent, so the change is not committed/)
          const rows = await read
          expect(typeof rows === 'string' ? rows : rows.message, shape).not.toContain(SECRET)
          expect(rows, shape).toBe('[[]]')
          expect(await inherited(parent), shape).toBe(0)
        } finally {
          a.end()
          await b.end()
          await undo()
        }
      }
    })
  })
})
