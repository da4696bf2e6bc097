/**
 * Attacks on the tunnel's view of the session (issue 13, families 5, 6 and 7), through the real
 * tunnel and a real server, with a raw wire client: each sequence makes the tunnel's record of
 * statements, portals, cursors or owed replies differ from the server's, and then uses the
 * difference. Every test here leaked or re-ran an approved statement on the code before the
 * protocol state followed the server's acknowledgements.
 */
import pg from 'pg'
import {serialize} from 'pg-protocol'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {createMaskingFilterFactory} from '../../src/masking/filter.js'
import type {ProxyHooks, StatementContext, StatementVerdict} from '../../src/proxy/seam.js'
import {decodeDataRow, decodeNotice} from '../../src/wire/backend.js'
import {leaked, maskingFixture, NO_CONFIG, type MaskingFixture} from '../masking/fixture.js'
import {withClient} from '../helpers/pg.js'
import {codes, RawClient, type RawMessage} from '../helpers/raw-client.js'
import {startTunnel, type TestTunnel} from '../helpers/tunnel.js'

/** A statement hook like the approval gate's: "just once" texts are approved for one execution, "forbidden" ones refused. */
function onceHook(sql: string): StatementVerdict {
  if (/forbidden/.test(sql)) return {action: 'reject', error: {severity: 'ERROR', code: '42501', message: 'test: forbidden'}}
  if (/just once/.test(sql)) return {action: 'allow', once: true}
  return {action: 'allow'}
}

/**
 * The approval gate's rules for one-execution approvals, with `EXECUTE p` judged by what the
 * session says `p` prepared (as policy judges it, src/policy/prepared.ts): a text that runs a
 * "just once" statement is approved for one execution, except as a named prepared statement,
 * which is refused (it could be bound again and again). `approvals` counts the approvals of texts
 * that run it (not of the PREPARE that only defines it).
 */
function gateHook(approvals: {count: number}): (sql: string, ctx: StatementContext) => StatementVerdict {
  return (sql, ctx) => {
    const executed = [...sql.matchAll(/\bexecute\s+"?(\w+)/gi)].map((m) => ctx.session.statement(m[1]!)?.sql ?? '').join('\n')
    if (!/just once/.test(`${sql}\n${executed}`)) return {action: 'allow'}
    if (ctx.protocol === 'parse' && ctx.statementName) return {action: 'reject', error: {severity: 'ERROR', code: '42501', message: 'test: cannot be approved as a named prepared statement'}}
    if (!/^\s*prepare\b/i.test(sql)) approvals.count++
    return {action: 'allow', once: true}
  }
}

/** Every value of every DataRow, as text. */
function values(msgs: RawMessage[]): string {
  return msgs
    .filter((m) => m.code === 'D')
    .flatMap((m) => decodeDataRow(m.body).map((v) => v?.toString('utf8') ?? ''))
    .join('\n')
}

function errors(msgs: RawMessage[]): string[] {
  return msgs.filter((m) => m.code === 'E').map((m) => `${decodeNotice(m.body).code} ${decodeNotice(m.body).message}`)
}

describe('the protocol state cannot be talked around', () => {
  let fx: MaskingFixture
  let t: TestTunnel
  let clear: TestTunnel

  beforeAll(async () => {
    fx = await maskingFixture()
    await withClient(fx.db.url, (c) => c.query('create table once_log (v text); create table copy_sink (v text); create table copy_int (v int)'))
    const hooks: ProxyHooks = {
      statement: onceHook,
      resultFilter: createMaskingFilterFactory({catalog: fx.catalog, masking: NO_CONFIG, identity: {groups: [], kind: 'human'}}),
    }
    t = await startTunnel(fx.db, hooks)
    clear = await startTunnel(fx.db)
  })
  afterAll(async () => {
    await t.close()
    await clear.close()
    await fx.close()
  })

  const connect = (tunnel = t) => RawClient.connect(tunnel.port, {password: tunnel.secret, database: fx.db.database})
  const onceRuns = () => withClient(fx.db.url, async (c) => (await c.query("select count(*)::int n from once_log where v = 'just once'")).rows[0].n as number)

  describe('family 5: the map of statements after a failed Parse', () => {
    // Each prefix fails on the server, which then skips the unnamed Parse after it up to Sync.
    const failures: [string, () => Buffer[]][] = [
      ['a named Parse the server rejects', () => [serialize.parse({name: 'broken', text: 'select * from no_such_table'})]],
      ['a named Parse the tunnel refuses', () => [serialize.parse({name: 'refused', text: 'select forbidden from customers'})]],
      ['a Bind of a statement that does not exist', () => [serialize.bind({statement: 'nope'})]],
      ['an Execute that fails', () => [serialize.parse({name: 'div', text: 'select 1/0'}), serialize.bind({statement: 'div'}), serialize.execute({})]],
    ]
    for (const [what, failing] of failures) {
      it(`keeps an approved statement to one run after ${what}`, async () => {
        await withClient(fx.db.url, (c) => c.query('truncate once_log'))
        const raw = await connect()
        raw.send(serialize.parse({text: "insert into once_log values ('just once')"}), serialize.bind({}), serialize.execute({}), serialize.sync())
        expect(codes(await raw.untilReady())).toBe('12CZ')
        // The unnamed Parse below is skipped by the server: the approved statement stays the unnamed one.
        raw.send(...failing(), serialize.parse({text: 'select 1'}), serialize.sync())
        const skipped = await raw.untilReady()
        expect(codes(skipped)).toMatch(/E Z$|EZ$/)
        for (let i = 0; i < 3; i++) {
          raw.send(serialize.bind({}), serialize.execute({}), serialize.sync())
          const again = await raw.untilReady()
          expect(codes(again)).toBe('EZ')
          expect(errors(again)[0]).toMatch(/approved for one execution|not known to the tunnel/)
        }
        expect(await onceRuns()).toBe(1)
        raw.end()
      })
    }

    it('forgets the unnamed statement when the server does (a failed unnamed Parse, a simple query)', async () => {
      await withClient(fx.db.url, (c) => c.query('truncate once_log'))
      const raw = await connect()
      for (const drop of [[serialize.parse({text: 'select * from no_such_table'}), serialize.sync()], [serialize.query('select 1')]]) {
        raw.send(serialize.parse({text: "insert into once_log values ('just once')"}), serialize.sync())
        expect(codes(await raw.untilReady())).toBe('1Z')
        raw.send(...drop)
        await raw.untilReady()
        raw.send(serialize.bind({}), serialize.execute({}), serialize.sync())
        const msgs = await raw.untilReady()
        expect(codes(msgs)).toBe('EZ')
        expect(errors(msgs)[0]).toMatch(/^26000 dbgate: the unnamed prepared statement is not known to the tunnel/)
      }
      expect(await onceRuns()).toBe(0)
      raw.end()
    })
  })

  describe('family 6: a name reused while it is taken', () => {
    // Computed columns under neutral names: only the statement's lineage tells masking where they come from.
    const sensitive = "select full_name || '' as a, address || '' as b from customers order by id"
    const harmless = "select 'nobody'::text as a, 'nowhere'::text as b from customers order by id"

    it('is proven to leak on an unprotected tunnel (the sequences return real values)', async () => {
      const raw = await connect(clear)
      raw.send(serialize.query(`prepare p6 as ${sensitive}`))
      await raw.untilReady()
      raw.send(serialize.query('execute p6'))
      expect(leaked(values(await raw.untilReady()), fx.secrets).length).toBeGreaterThan(0)
      raw.end()
    })

    it('SQL PREPARE: the failed second PREPARE leaves the first, and EXECUTE is masked by the first', async () => {
      const raw = await connect()
      raw.send(serialize.query(`prepare p as ${sensitive}`))
      expect(errors(await raw.untilReady())).toEqual([])
      raw.send(serialize.query(`prepare p as ${harmless}`))
      expect(errors(await raw.untilReady())[0]).toMatch(/^42P05/)
      raw.send(serialize.query('execute p'))
      const rows = await raw.untilReady()
      expect(values(rows)).not.toBe('')
      expect(leaked(values(rows), fx.secrets)).toEqual([])
      raw.end()
    })

    it('protocol Parse: the failed second Parse leaves the first, over Bind/Execute and SQL EXECUTE', async () => {
      const raw = await connect()
      raw.send(serialize.parse({name: 's6', text: sensitive}), serialize.sync())
      expect(codes(await raw.untilReady())).toBe('1Z')
      raw.send(serialize.parse({name: 's6', text: harmless}), serialize.sync())
      expect(errors(await raw.untilReady())[0]).toMatch(/^42P05/)
      raw.send(serialize.bind({statement: 's6'}), serialize.execute({}), serialize.sync())
      const bound = await raw.untilReady()
      expect(leaked(values(bound), fx.secrets)).toEqual([])
      expect(bound.filter((m) => m.code === 'D').length).toBeGreaterThan(0)
      raw.send(serialize.query('execute s6'))
      expect(leaked(values(await raw.untilReady()), fx.secrets)).toEqual([])
      raw.end()
    })

    it('one namespace: a protocol Parse cannot replace what SQL PREPARE made, nor the other way round', async () => {
      const raw = await connect()
      raw.send(serialize.query(`prepare mixed1 as ${sensitive}`))
      await raw.untilReady()
      raw.send(serialize.parse({name: 'mixed1', text: harmless}), serialize.bind({statement: 'mixed1'}), serialize.execute({}), serialize.sync())
      expect(errors(await raw.untilReady())[0]).toMatch(/^42P05/)
      raw.send(serialize.bind({statement: 'mixed1'}), serialize.execute({}), serialize.sync())
      expect(leaked(values(await raw.untilReady()), fx.secrets)).toEqual([])
      raw.send(serialize.parse({name: 'mixed2', text: sensitive}), serialize.sync())
      await raw.untilReady()
      raw.send(serialize.query(`prepare mixed2 as ${harmless}`))
      expect(errors(await raw.untilReady())[0]).toMatch(/^42P05/)
      raw.send(serialize.query('execute mixed2'))
      expect(leaked(values(await raw.untilReady()), fx.secrets)).toEqual([])
      raw.end()
    })

    it('DECLARE … WITH HOLD: the failed second DECLARE leaves the first cursor, and FETCH is masked by it', async () => {
      const raw = await connect()
      raw.send(serialize.query(`declare c6 cursor with hold for ${sensitive}`))
      expect(errors(await raw.untilReady())).toEqual([])
      raw.send(serialize.query(`declare c6 cursor with hold for ${harmless}`))
      expect(errors(await raw.untilReady())[0]).toMatch(/^42P03/)
      raw.send(serialize.query('fetch 3 from c6'))
      const first = await raw.untilReady()
      expect(first.filter((m) => m.code === 'D')).toHaveLength(3)
      expect(leaked(values(first), fx.secrets)).toEqual([])
      // A protocol Execute of the cursor's portal reads the same rows.
      raw.send(serialize.execute({portal: 'c6', rows: 2}), serialize.sync())
      expect(leaked(values(await raw.untilReady()), fx.secrets)).toEqual([])
      raw.end()
    })

    it('pipelined without waiting: EXECUTE and FETCH wait for the definitions in flight, then use the first', async () => {
      const raw = await connect()
      raw.send(serialize.query(`prepare piped as ${sensitive}`), serialize.query(`prepare piped as ${harmless}`), serialize.query('execute piped'))
      expect(errors(await raw.untilReady())).toEqual([])
      expect(errors(await raw.untilReady())[0]).toMatch(/^42P05/)
      const executed = await raw.untilReady()
      expect(executed.filter((m) => m.code === 'D').length).toBeGreaterThan(0)
      expect(leaked(values(executed), fx.secrets)).toEqual([])
      raw.send(serialize.query(`declare pc cursor with hold for ${sensitive}`), serialize.query(`declare pc cursor with hold for ${harmless}`), serialize.query('fetch all from pc'))
      await raw.untilReady()
      expect(errors(await raw.untilReady())[0]).toMatch(/^42P03/)
      const fetched = await raw.untilReady()
      expect(fetched.filter((m) => m.code === 'D').length).toBeGreaterThan(0)
      expect(leaked(values(fetched), fx.secrets)).toEqual([])
      raw.end()
    })

    it('a portal keeps the statement it was bound from when the name is redefined before Execute', async () => {
      const raw = await connect()
      raw.send(serialize.query('begin'))
      await raw.untilReady()
      raw.send(serialize.query(`prepare moving as ${sensitive}`))
      await raw.untilReady()
      raw.send(serialize.bind({portal: 'held', statement: 'moving'}), serialize.sync())
      const bound = await raw.untilReady()
      expect(errors(bound)).toEqual([])
      expect(codes(bound)).toBe('2Z')
      raw.send(serialize.query(`deallocate moving; prepare moving as ${harmless}`))
      expect(errors(await raw.untilReady())).toEqual([])
      raw.send(serialize.execute({portal: 'held'}), serialize.sync())
      const rows = await raw.untilReady()
      expect(rows.filter((m) => m.code === 'D').length).toBeGreaterThan(0)
      expect(leaked(values(rows), fx.secrets)).toEqual([])
      raw.send(serialize.query('rollback'))
      await raw.untilReady()
      raw.end()
    })
  })

  describe('family 7: replies owed for messages the server skipped', () => {
    const looksHarmless = "select 'nobody'::text as a, 'nowhere'::text as b"
    const sensitive = "select full_name || '' as a, address || '' as b from customers order by id"

    it('drops a skipped simple query from the owed replies, so the next results keep their own filter', async () => {
      const raw = await connect()
      // The Query after the failed Parse is skipped by the server: it gets no reply at all.
      raw.send(serialize.parse({name: 'bad7', text: 'select * from no_such_table'}), serialize.query(looksHarmless), serialize.sync())
      const first = await raw.untilReady()
      expect(codes(first)).toBe('EZ')
      raw.send(serialize.query(looksHarmless), serialize.query(sensitive))
      const harmless = await raw.untilReady()
      const rows = await raw.untilReady()
      expect(leaked(values(rows), fx.secrets)).toEqual([])
      expect(rows.filter((m) => m.code === 'D').length).toBeGreaterThan(1)
      // And the harmless query's own rows reach the client as they are.
      expect(values(harmless)).toBe('nobody\nnowhere')
      raw.end()
    })

    it('also when the client sends the skipped messages after the error arrived', async () => {
      const raw = await connect()
      raw.send(serialize.parse({name: 'bad7b', text: 'select * from no_such_table'}), serialize.flush())
      expect((await raw.next()).code).toBe('E')
      raw.send(serialize.query(looksHarmless), serialize.bind({statement: 'bad7b'}), serialize.execute({}), serialize.sync())
      expect(codes(await raw.untilReady())).toBe('Z')
      raw.send(serialize.query(looksHarmless), serialize.query(sensitive))
      const harmless = await raw.untilReady()
      expect(leaked(values(await raw.untilReady()), fx.secrets)).toEqual([])
      expect(values(harmless)).toBe('nobody\nnowhere')
      raw.end()
    })
  })

  describe('family 8: a Sync the server reads as COPY data', () => {
    // While the server reads COPY FROM STDIN it ignores a Sync among the data (copyfromparse.c,
    // CopyGetData). A tunnel that counts one as owed a ReadyForQuery lags one reply behind the
    // server from then on: a statement that fails hands its owed reply to the next one, whose rows
    // then pass through the filter of the statement before.
    const lagging = "select 'nobody'::text as a, 'nowhere'::text as b from customers where id = 1/0"
    const sensitive = "select full_name || '' as a, address || '' as b from customers order by id"
    const data = (text: string) => serialize.copyData(Buffer.from(text))
    const {query, sync, copyDone} = serialize
    const copyFail = () => serialize.copyFail('client gave up')

    /** Each sequence starts one or more COPY FROM STDIN, sends Syncs where the server ignores them, and ends its COPYs. */
    const sequences: [string, Buffer[], number][] = [
      ['a Sync after the data of a simple COPY', [query('copy copy_sink from stdin'), data('a\n'), sync(), copyDone()], 1],
      ['a Sync pipelined right after a simple COPY', [query('copy copy_sink from stdin'), sync(), data('a\n'), copyDone()], 1],
      ['Syncs between the data and a CopyFail', [query('copy copy_sink from stdin'), data('a\n'), sync(), sync(), data('b\n'), sync(), copyFail()], 0],
      ['an extended COPY with its Sync pipelined (libpq PQexecParams)', [serialize.parse({text: 'copy copy_sink from stdin'}), serialize.bind({}), serialize.describe({type: 'P'}), serialize.execute({}), sync(), data('a\n'), copyDone(), sync()], 1],
      ['an extended COPY with Syncs in its data, and no Sync before it', [serialize.parse({text: 'copy copy_sink from stdin'}), serialize.bind({}), serialize.execute({}), serialize.flush(), data('a\n'), sync(), data('b\n'), sync(), copyDone(), sync()], 2],
      ['one text with two COPYs and Syncs in each', [query('copy copy_sink from stdin; copy copy_sink from stdin'), sync(), data('a\n'), copyDone(), sync(), data('b\n'), sync(), copyDone()], 2],
      ['a COPY that fails on its data, with Syncs after the bad row', [query('copy copy_int from stdin'), data('not a number\n'), sync(), data('1\n'), sync(), copyDone()], 0],
    ]
    const sinkRows = () => withClient(fx.db.url, async (c) => (await c.query('select (select count(*)::int from copy_sink) + (select count(*)::int from copy_int) n')).rows[0].n as number)

    for (const [what, sequence, rows] of sequences) {
      it(`keeps every later result with its own statement after ${what}`, async () => {
        const before = await sinkRows()
        const raw = await connect()
        raw.send(...sequence)
        expect(codes(await raw.untilReady())).toMatch(/^[12n]*G.*Z$/)
        // The server answers a Sync it reads after a COPY failed, and none it reads as COPY data;
        // the client reads whatever came up to its fence.
        raw.send(query("select 'fence' as v"))
        while (!values(await raw.untilReady()).includes('fence'));
        expect(await sinkRows()).toBe(before + rows)
        // A failing statement, then one that reads clear values under a neutral name.
        raw.send(query(lagging))
        expect(codes(await raw.untilReady())).toBe('EZ')
        raw.send(query(sensitive))
        const result = await raw.untilReady()
        expect(codes(result)).toMatch(/^TD+CZ$/)
        expect(leaked(values(result), fx.secrets)).toEqual([])
        raw.send(query("select 'still in step' as v"))
        expect(values(await raw.untilReady())).toBe('still in step')
        raw.end()
      })
    }

    it('closes the one connection that sends other messages during a COPY, and the tunnel serves the others', async () => {
      const other = await connect()
      for (const intruder of [query('select 1'), serialize.parse({text: 'select 1'}), serialize.bind({}), serialize.execute({}), serialize.describe({type: 'S'}), serialize.close({type: 'S', name: ''})]) {
        const raw = await connect()
        raw.send(query('copy copy_sink from stdin'))
        expect((await raw.next()).code).toBe('G')
        raw.send(data('a\n'), intruder)
        await raw.waitClosed()
        expect(errors(raw.messages).join('\n')).toMatch(/during COPY FROM STDIN/)
        other.send(query("select 'other' as v"))
        expect(values(await other.untilReady())).toBe('other')
      }
      other.end()
    })
  })

  describe('family 10: a name the statement reads, defined again after it was judged', () => {
    // `EXECUTE p` (also inside EXPLAIN ANALYZE or CREATE TABLE AS) looks `p` up when it runs, not
    // when it is parsed or bound: a protocol statement whose text executes `p` runs whatever `p`
    // is at its Execute. Judged once at its Parse, with `p` harmless, it then ran the statement an
    // approved PREPARE made, without the approval each EXECUTE of it needs.
    const approvals = {count: 0}
    let gate: TestTunnel
    beforeAll(async () => {
      gate = await startTunnel(fx.db, {statement: gateHook(approvals)})
    })
    afterAll(async () => {
      await gate.close()
    })
    const {parse, bind, execute, sync, query} = serialize
    const redefine = [query('deallocate target'), query("prepare target as insert into once_log values ('just once') returning 1")]
    // (The unnamed statement does not outlive the simple queries that prepare the name again.)
    const texts = ['execute target', 'explain (analyze, costs off) execute target', 'explain (analyze, costs off) execute "target"']

    for (const text of texts) {
      for (const piped of [false, true]) {
        it(`judges "${text}" again at Bind after the name was prepared again${piped ? ', all sent in one write' : ''}`, async () => {
          await withClient(fx.db.url, (c) => c.query('truncate once_log'))
          approvals.count = 0
          const raw = await connect(gate)
          const steps = [[query('prepare target as select 1')], [parse({name: 'named10', text}), sync()], ...redefine.map((q) => [q]), ...Array.from({length: 3}, () => [bind({statement: 'named10'}), execute({}), sync()])]
          if (piped) raw.send(...steps.flat())
          for (const step of steps) {
            if (!piped) raw.send(...step)
            await raw.untilReady()
          }
          expect(await onceRuns()).toBe(approvals.count)
          raw.end()
        })
      }
    }

    it('judges a portal again at Execute when the name its text reads was prepared again after its Bind', async () => {
      await withClient(fx.db.url, (c) => c.query('truncate once_log'))
      approvals.count = 0
      const raw = await connect(gate)
      raw.send(query('prepare target as select 1'))
      await raw.untilReady()
      raw.send(query('begin'))
      await raw.untilReady()
      raw.send(parse({name: 'named10b', text: 'execute target'}), bind({statement: 'named10b', portal: 'p10'}), sync())
      expect(codes(await raw.untilReady())).toBe('12Z')
      for (const q of redefine) {
        raw.send(q)
        expect(errors(await raw.untilReady())).toEqual([])
      }
      raw.send(execute({portal: 'p10'}), sync())
      const ran = await raw.untilReady()
      raw.send(query('commit'))
      await raw.untilReady()
      expect(errors(ran).join('\n')).toMatch(/named prepared statement/)
      expect(await onceRuns()).toBe(0)
      raw.end()
    })
  })

  describe('family 11: a Describe of a FETCH whose cursor is gone', () => {
    // PostgreSQL (18 at least) reads the cursor a prepared `FETCH` names when it describes the
    // statement, or a portal bound from it, and assumes the cursor still exists: once it is closed
    // (CLOSE, a protocol Close, the end of its transaction) the backend dereferences nothing and
    // crashes, and the postmaster ends every session of the database to recover. Any client
    // could take the database down with four harmless messages.
    const {parse, bind, describe: describeMsg, close, sync, query} = serialize
    const sequences: [string, Buffer[][], Buffer[]][] = [
      ['a Close of the WITH HOLD cursor, then Describe of the statement', [[query('declare c11 cursor with hold for select 6')], [parse({name: 'f11', text: 'fetch 1 from c11'}), sync()], [close({type: 'P', name: 'c11'}), sync()]], [describeMsg({type: 'S', name: 'f11'}), sync()]],
      ['the commit that ends the cursor, then Describe of the statement', [[query('begin'), query('declare c11 cursor for select 6')], [parse({name: 'f11', text: 'fetch forward 2 from c11'}), sync()], [query('commit')]], [describeMsg({type: 'S', name: 'f11'}), sync()]],
      ['an SQL CLOSE, then Describe of a portal bound from the statement', [[query('begin'), query('declare c11 cursor for select 6')], [parse({name: 'f11', text: 'fetch 1 from c11'}), bind({statement: 'f11', portal: 'p11'}), sync()], [query('close c11')]], [describeMsg({type: 'P', name: 'p11'}), sync()]],
      // The tunnel forgets the cursors and portals of a transaction at ROLLBACK TO SAVEPOINT, which keeps those made before the savepoint.
      ['a portal forgotten at ROLLBACK TO SAVEPOINT, its cursor closed', [[query('begin'), query('declare c11 cursor for select 6')], [parse({name: 'f11', text: 'fetch 1 from c11'}), bind({statement: 'f11', portal: 'p11'}), sync()], [query('savepoint s11'), query('rollback to savepoint s11'), query('close c11')]], [describeMsg({type: 'P', name: 'p11'}), sync()]],
      ['the Describe of a statement that EXECUTEs the FETCH', [[query('declare c11 cursor with hold for select 6')], [parse({name: 'f11', text: 'fetch 1 from c11'}), sync()], [query('close c11')]], [parse({name: 'e11', text: 'execute f11'}), describeMsg({type: 'S', name: 'e11'}), sync()]],
      ['the Describe of a portal that EXECUTEs the FETCH', [[query('begin'), query('declare c11 cursor for select 6')], [parse({name: 'f11', text: 'fetch 1 from c11'}), parse({name: 'e11', text: 'explain analyze execute f11'}), parse({name: 'x11', text: 'execute f11'}), bind({statement: 'x11', portal: 'p11'}), sync()], [close({type: 'P', name: 'c11'}), sync()]], [describeMsg({type: 'P', name: 'p11'}), sync()]],
      ['a protocol portal fetched from by name, closed', [[query('begin')], [parse({name: 's11', text: 'select 1'}), bind({statement: 's11', portal: 'q11'}), parse({name: 'f11', text: 'fetch all from q11'}), sync()], [close({type: 'P', name: 'q11'}), sync()]], [describeMsg({type: 'S', name: 'f11'}), sync()]],
    ]
    for (const [what, setup, describing] of sequences) {
      for (const tunnel of ['with hooks', 'without hooks']) {
        it(`refuses it and the database stays up: ${what} (${tunnel})`, async () => {
          const bystander = new pg.Client({connectionString: fx.db.url})
          const lost: Error[] = []
          bystander.on('error', (e) => lost.push(e))
          await bystander.connect()
          const raw = await connect(tunnel === 'with hooks' ? t : clear)
          for (const step of setup) {
            raw.send(...step)
            for (const m of step) if (m[0] === 0x51 || m[0] === 0x53) expect(errors(await raw.untilReady())).toEqual([])
          }
          raw.send(...describing)
          const described = await raw.untilReady()
          expect(errors(described)[0]).toMatch(/^34000 dbgate: (.*FETCH from cursor "(c11|q11)", which is not open|portal "p11" is not known to the tunnel, so it is not described)/)
          // The session goes on, and so does everyone else's.
          raw.send(query('rollback'), query("select 'still up' as v"))
          await raw.untilReady()
          expect(values(await raw.untilReady())).toBe('still up')
          expect((await bystander.query("select 'bystander' as v")).rows[0].v).toBe('bystander')
          expect(lost).toEqual([])
          await bystander.end()
          raw.end()
        })
      }
    }

    it('still describes a FETCH whose cursor is open', async () => {
      const raw = await connect()
      raw.send(query('begin'), query('declare c11b cursor for select 6 as six'))
      await raw.untilReady()
      await raw.untilReady()
      raw.send(parse({name: 'f11b', text: 'fetch 1 from c11b'}), describeMsg({type: 'S', name: 'f11b'}), bind({statement: 'f11b', portal: 'p11b'}), describeMsg({type: 'P', name: 'p11b'}), serialize.execute({portal: 'p11b'}), sync())
      const rows = await raw.untilReady()
      expect(codes(rows)).toBe('1tT2TDCZ')
      expect(values(rows)).toBe('6')
      raw.send(query('rollback'))
      await raw.untilReady()
      raw.end()
    })
  })

  describe('family 12: EXECUTE of a prepared statement that itself defines or drops names', () => {
    // A protocol Parse may hold any statement, DEALLOCATE and PREPARE included, and SQL EXECUTE
    // runs it. The tunnel follows what such a statement does when it is bound and executed, but
    // not through EXECUTE: `EXECUTE dx` (DEALLOCATE p12) and `EXECUTE py` (PREPARE p12 AS …) left
    // it masking p12 by the first, harmless text while the server ran the second.
    const harmless = "select 'nobody'::text as a, 'nowhere'::text as b from customers order by id"
    const sensitive = "select full_name || '' as a, address || '' as b from customers order by id"
    const {parse, bind, execute, close, sync, query} = serialize
    const ways: [string, Buffer[][]][] = [
      ['SQL EXECUTE of each', [[query('execute dx12')], [query('execute py12')]]],
      ['SQL EXECUTE of both in one text', [[query('execute dx12; execute py12')]]],
      ['EXPLAIN ANALYZE EXECUTE', [[query('explain analyze execute dx12')], [query('explain analyze execute py12')]]],
      ['a protocol statement that EXECUTEs them', [[parse({name: 'ex12', text: 'execute dx12'}), bind({statement: 'ex12'}), execute({}), sync()], [parse({name: 'ey12', text: 'execute py12'}), bind({statement: 'ey12'}), execute({}), sync()]]],
      [
        'a protocol statement bound while the name it EXECUTEs was harmless',
        [
          [parse({name: 'q12', text: 'select 1'}), parse({name: 'ex12', text: 'execute q12'}), bind({statement: 'ex12'}), sync()],
          [close({type: 'S', name: 'q12'}), parse({name: 'q12', text: 'deallocate p12'}), sync()],
          [bind({statement: 'ex12'}), execute({}), sync()],
        ],
      ],
      [
        'a portal bound while the name it EXECUTEs was harmless',
        [
          [query('begin')],
          [parse({name: 'q12', text: 'select 1'}), parse({name: 'ex12', text: 'execute q12'}), bind({statement: 'ex12', portal: 'held12'}), sync()],
          [close({type: 'S', name: 'q12'}), parse({name: 'q12', text: 'deallocate p12'}), sync()],
          [execute({portal: 'held12'}), sync()],
          [query('rollback')],
        ],
      ],
    ]
    for (const [what, steps] of ways) {
      it(`keeps the tunnel's names the server's: ${what}`, async () => {
        const raw = await connect()
        raw.send(parse({name: 'p12', text: harmless}), parse({name: 'dx12', text: 'deallocate p12'}), parse({name: 'py12', text: `prepare p12 as ${sensitive}`}), sync())
        expect(codes(await raw.untilReady())).toBe('111Z')
        const refused: string[] = []
        for (const step of steps) {
          raw.send(...step)
          refused.push(...errors(await raw.untilReady()))
        }
        expect(refused.join('\n')).toMatch(/0A000 dbgate: EXECUTE of prepared statement "(dx12|py12|q12)" is not allowed through the tunnel: it (deallocates|prepares)/)
        for (const run of [[query('execute p12')], [bind({statement: 'p12'}), execute({}), sync()]]) {
          raw.send(...run)
          const rows = await raw.untilReady()
          expect(rows.filter((m) => m.code === 'D').length).toBeGreaterThan(0)
          expect(leaked(values(rows), fx.secrets)).toEqual([])
        }
        raw.end()
      })
    }
  })

  describe('family 9: names the server cuts to 63 bytes', () => {
    // The server keys prepared statements and portals by their first 63 bytes. Two protocol names
    // that differ only after that are one name there and two in a map keyed by the whole name: a
    // Close of one and a Parse (or Bind) of the other left the tunnel judging the first by a text
    // the server no longer had.
    const sensitive = "select full_name || '' as a, address || '' as b from customers order by id"
    const harmless = "select 'nobody'::text as a, 'nowhere'::text as b from customers order by id"
    const stem = 'n'.repeat(63)
    const wide = 'é'.repeat(31) + 'e'
    const {parse, bind, execute, describe: describeMsg, close, sync, query} = serialize

    const sequences: [string, Buffer[][]][] = [
      ['a statement closed and parsed again under a longer name', [[parse({name: `${stem}x`, text: harmless}), sync()], [close({type: 'S', name: `${stem}z`}), sync()], [parse({name: `${stem}y`, text: sensitive}), sync()], [bind({statement: `${stem}x`}), execute({}), sync()]]],
      ['a multibyte name cut in the middle of a character', [[parse({name: `${wide}éx`, text: harmless}), sync()], [close({type: 'S', name: `${wide}éz`}), sync()], [parse({name: `${wide}éy`, text: sensitive}), sync()], [bind({statement: `${wide}éx`}), execute({}), sync()]]],
      ['a portal closed and bound again under a longer name', [[parse({name: 'h9', text: harmless}), parse({name: 's9', text: sensitive}), sync()], [query('begin')], [bind({statement: 'h9', portal: `${stem}x`}), sync()], [close({type: 'P', name: `${stem}z`}), bind({statement: 's9', portal: `${stem}y`}), sync()], [execute({portal: `${stem}x`}), sync()]]],
      ['a long name only in Describe, Execute and Close', [[parse({name: 's9b', text: sensitive}), bind({statement: 's9b'}), describeMsg({type: 'P', name: `${stem}q`}), execute({portal: `${stem}q`}), close({type: 'S', name: `${stem}q`}), sync()]]],
    ]

    for (const [what, steps] of sequences) {
      it(`refuses names longer than 63 bytes: ${what}`, async () => {
        const raw = await connect()
        const seen: RawMessage[] = []
        for (const step of steps) {
          if (raw.closed) break
          raw.send(...step)
          try {
            seen.push(...(await raw.untilReady()))
          } catch {
            break
          }
        }
        expect(leaked(values(raw.messages), fx.secrets)).toEqual([])
        await raw.waitClosed()
        expect(errors(raw.messages).join('\n')).toMatch(/^08P01 .*name of \d+ bytes .*first 63 bytes/m)
      })
    }

    it('keeps an approved statement to one run', async () => {
      await withClient(fx.db.url, (c) => c.query('truncate once_log'))
      const raw = await connect()
      const steps = [
        [parse({name: `${stem}x`, text: 'select 1'}), sync()],
        [close({type: 'S', name: `${stem}z`}), sync()],
        [parse({name: `${stem}y`, text: "insert into once_log values ('just once')"}), bind({statement: `${stem}y`}), execute({}), sync()],
        // The server binds the approved statement under the first name too.
        ...Array.from({length: 3}, () => [bind({statement: `${stem}x`}), execute({}), sync()]),
      ]
      for (const step of steps) {
        raw.send(...step)
        if (!(await raw.untilReady().catch(() => undefined))) break
      }
      expect(await onceRuns()).toBeLessThanOrEqual(1)
      await raw.waitClosed()
    })

    it('takes names of up to 63 bytes, and SQL names the parser cuts as the server does', async () => {
      const raw = await connect()
      raw.send(parse({name: stem, text: harmless}), bind({statement: stem, portal: stem}), execute({portal: stem}), sync())
      expect(values(await raw.untilReady())).toContain('nobody')
      raw.send(query(`prepare ${'m'.repeat(70)} as ${sensitive}`))
      await raw.untilReady()
      raw.send(query(`execute ${'m'.repeat(63)}`))
      const rows = await raw.untilReady()
      expect(codes(rows)).toMatch(/^N?TD+CZ$/)
      expect(leaked(values(rows), fx.secrets)).toEqual([])
      raw.end()
    })
  })
})
