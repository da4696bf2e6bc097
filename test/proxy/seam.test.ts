import net from 'node:net'
import {serialize} from 'pg-protocol'
import {encodeCancelRequest} from '../../src/wire/frontend.js'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {ProxyHooks, StatementEvent, StatementVerdict} from '../../src/proxy/seam.js'
import {decodeDataRow, decodeNotice, decodeReadyForQuery} from '../../src/wire/backend.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {codes, errorOf, RawClient} from '../helpers/raw-client.js'
import {startTunnel, type TestTunnel} from '../helpers/tunnel.js'
import {waitFor} from '../helpers/wait.js'

/** A test-only policy: refuses any statement mentioning "forbidden", warns on "careful". */
function testPolicy(sql: string): StatementVerdict {
  if (/forbidden/i.test(sql)) return {action: 'reject', error: {severity: 'ERROR', code: '42501', message: 'test hook: forbidden statement', hint: 'do not'}}
  if (/careful/i.test(sql)) return {action: 'allow', notices: [{severity: 'WARNING', code: '01000', message: 'test hook: be careful'}]}
  return {action: 'allow'}
}

describe('the policy and result hooks', () => {
  let db: UpstreamInfo
  let t: TestTunnel
  let asyncT: TestTunnel
  const events: StatementEvent[] = []

  beforeAll(async () => {
    db = await createTestDatabase()
    await withClient(db.url, (c) => c.query("create table forbidden_t (id int); create table secrets (id int, v text); insert into secrets values (1, 'clear-value')"))
    const hooks: ProxyHooks = {
      statement: testPolicy,
      onStatement: (e) => events.push(e),
      resultFilter: (sql) =>
        sql && /from secrets/.test(sql)
          ? {
              dataRow: (values) => values.map((v, i) => (i === 1 && v ? Buffer.from('*****') : v)),
              rowDescription: (fields) => fields.map((f) => ({...f, name: f.name === 'v' ? 'v_masked' : f.name})),
              error: (fields) => ({...fields, message: fields.message.replace(/clear-value/g, '*****'), detail: undefined}),
            }
          : undefined,
    }
    t = await startTunnel(db, hooks)
    asyncT = await startTunnel(db, {statement: async (sql, ctx) => new Promise((r) => setTimeout(() => r(testPolicy(sql)), ctx.protocol === 'parse' ? 20 : 5))})
  })
  afterAll(async () => {
    await t.close()
    await asyncT.close()
  })

  it('rejects a simple query without running it and the session stays usable', async () => {
    const c = await t.client()
    await expect(c.query('drop table forbidden_t')).rejects.toMatchObject({code: '42501', message: 'test hook: forbidden statement', hint: 'do not'})
    expect((await c.query('select 1 as ok')).rows).toEqual([{ok: 1}])
    const exists = await withClient(db.url, (a) => a.query("select to_regclass('forbidden_t') as t"))
    expect(exists.rows[0].t).toBe('forbidden_t')
  })

  it('rejects a whole multi-statement query when one of its statements is refused', async () => {
    const c = await t.client()
    await expect(c.query('insert into secrets values (2, \'x\'); drop table forbidden_t')).rejects.toMatchObject({code: '42501'})
    const n = await withClient(db.url, (a) => a.query('select count(*)::int n from secrets'))
    expect(n.rows[0].n).toBe(1)
  })

  it('leaves a transaction failed after a rejection, as a server error would, on both sides', async () => {
    const raw = await RawClient.connect(t.port, {password: t.secret, database: db.database})
    raw.send(serialize.query('begin'))
    await raw.untilReady()
    raw.send(serialize.query("insert into secrets values (3, 'in-tx')"))
    await raw.untilReady()
    raw.send(serialize.query('drop table forbidden_t'))
    const denied = await raw.untilReady()
    expect(codes(denied)).toBe('EZ')
    expect(errorOf(denied)?.message).toBe('test hook: forbidden statement')
    expect(decodeReadyForQuery(denied[1]!.body)).toBe('E')
    raw.send(serialize.query('select 1'))
    const next = await raw.untilReady()
    expect(errorOf(next)?.code).toBe('25P02')
    raw.send(serialize.query('rollback'))
    const rb = await raw.untilReady()
    expect(decodeReadyForQuery(rb.at(-1)!.body)).toBe('I')
    const n = await withClient(db.url, (a) => a.query("select count(*)::int n from secrets where v = 'in-tx'"))
    expect(n.rows[0].n).toBe(0)
    raw.end()
  })

  it('discards everything up to Sync after a rejected Parse in a pipeline, then carries on', async () => {
    const raw = await RawClient.connect(t.port, {password: t.secret, database: db.database})
    raw.send(
      serialize.parse({text: 'select 1'}),
      serialize.bind({}),
      serialize.execute({}),
      serialize.parse({name: 'bad', text: 'delete from forbidden_t'}),
      serialize.bind({statement: 'bad'}),
      serialize.execute({}),
      serialize.parse({text: 'select 2'}),
      serialize.bind({}),
      serialize.execute({}),
      serialize.sync(),
      serialize.parse({text: 'select 3'}),
      serialize.bind({}),
      serialize.execute({}),
      serialize.sync(),
    )
    const first = await raw.untilReady()
    expect(codes(first)).toBe('12DCEZ')
    expect(decodeDataRow(first[2]!.body)[0]!.toString()).toBe('1')
    expect(errorOf(first)?.message).toBe('test hook: forbidden statement')
    const second = await raw.untilReady()
    expect(codes(second)).toBe('12DCZ')
    expect(decodeDataRow(second[2]!.body)[0]!.toString()).toBe('3')
    raw.end()
  })

  it('rejects a Parse inside a transaction block and keeps client and server in agreement', async () => {
    const c = await t.client()
    await c.query('begin')
    await expect(c.query('select * from forbidden_t where id = $1', [1])).rejects.toMatchObject({code: '42501'})
    await expect(c.query('select 1')).rejects.toMatchObject({code: '25P02'})
    await c.query('rollback')
    expect((await c.query('select $1::int as x', [5])).rows).toEqual([{x: 5}])
  })

  it('sends a warning notice for an allowed statement the hook flags', async () => {
    const c = await t.client()
    const notice = new Promise<{message?: string}>((resolve) => c.once('notice', resolve))
    await c.query('select 1 as careful')
    expect((await notice).message).toBe('test hook: be careful')
  })

  it('lets the result hook rewrite row descriptions, rows and errors', async () => {
    const c = await t.client()
    const simple = await c.query('select id, v from secrets where id = 1')
    expect(simple.rows).toEqual([{id: 1, v_masked: '*****'}])
    const extended = await c.query('select id, v from secrets where id = $1', [1])
    expect(extended.rows).toEqual([{id: 1, v_masked: '*****'}])
    const err = await c.query('select v::int from secrets').catch((e: Error) => e)
    expect((err as Error).message).toBe('invalid input syntax for type integer: "*****"')
  })

  it('produces one event per statement with its outcome, rows and timing', async () => {
    events.length = 0
    const c = await t.client()
    await c.query('select * from secrets')
    await c.query('select id from secrets where id = $1', [1])
    await c.query('drop table forbidden_t').catch(() => {})
    await c.query('select * from no_such_table').catch(() => {})
    await c.end()
    // An event comes once the tunnel is done with a statement, which can be after the client has
    // its reply: wait for this connection's four, and leave out late ones from earlier tests.
    const {connectionId} = await waitFor(() => events.find((e) => e.sql === 'select * from secrets'), 'the first statement has its event')
    const ofThisConnection = () => events.filter((e) => e.connectionId === connectionId && !/pg_catalog/.test(e.sql))
    await waitFor(() => ofThisConnection().length >= 4, "this connection's four statements have their events")
    const mine = ofThisConnection()
    expect(mine.map((e) => [e.protocol, e.outcome, e.rows])).toEqual([
      ['simple', 'ok', 1],
      ['parse', 'ok', 1],
      ['simple', 'rejected', 0],
      ['simple', 'error', 0],
    ])
    expect(mine[1]!.params).toEqual(['1'])
    expect(mine[2]!.error).toEqual({code: '42501', message: 'test hook: forbidden statement'})
    expect(mine[3]!.error?.code).toBe('42P01')
    expect(mine.every((e) => e.durationMs >= 0 && e.startedAt instanceof Date)).toBe(true)
  })

  it('keeps message order with an asynchronous hook, pipelined', async () => {
    const raw = await RawClient.connect(asyncT.port, {password: asyncT.secret, database: db.database})
    raw.send(
      serialize.query('select 1'),
      serialize.query('select forbidden'),
      serialize.parse({text: 'select 2'}),
      serialize.bind({}),
      serialize.execute({}),
      serialize.sync(),
    )
    expect(codes(await raw.untilReady())).toBe('TDCZ')
    const denied = await raw.untilReady()
    expect(codes(denied)).toBe('EZ')
    expect(decodeNotice(denied[0]!.body).message).toBe('test hook: forbidden statement')
    const third = await raw.untilReady()
    expect(codes(third)).toBe('12DCZ')
    expect(decodeDataRow(third[2]!.body)[0]!.toString()).toBe('2')
    raw.end()
  })

  it('lets a waiting hook talk to the client and withdraws the wait on Ctrl-C (CancelRequest)', async () => {
    const waiting = await startTunnel(db, {
      statement: (sql, ctx) => {
        if (!/wait for me/.test(sql)) return {action: 'allow'}
        ctx.notify({severity: 'NOTICE', code: '00000', message: 'held: waiting for a decision'})
        return new Promise<StatementVerdict>((resolve) => {
          ctx.signal.addEventListener('abort', () =>
            resolve({action: 'reject', error: {severity: 'ERROR', code: '57014', message: 'withdrawn: the client cancelled while waiting'}}),
          )
        })
      },
    })
    const c = await waiting.client()
    const notices: string[] = []
    c.on('notice', (n) => notices.push(n.message ?? ''))
    const held = c.query("select 'wait for me'").catch((e: {code?: string; message: string}) => e)
    await waitFor(() => notices.length > 0, 'the client is told its statement is held')
    expect(notices).toEqual(['held: waiting for a decision'])
    const {processID, secretKey} = c as unknown as {processID: number; secretKey: number}
    const s = net.connect({host: '127.0.0.1', port: waiting.port})
    await new Promise((r) => s.once('connect', r))
    s.end(encodeCancelRequest(processID, secretKey))
    expect(await held).toMatchObject({code: '57014', message: 'withdrawn: the client cancelled while waiting'})
    expect((await c.query('select 1 as after')).rows).toEqual([{after: 1}])
    expect(notices).toEqual(['held: waiting for a decision'])
    await waiting.close()
  })

  it('refuses to bind again a statement that was allowed for one execution', async () => {
    const once = await startTunnel(db, {statement: (sql) => (/just once/.test(sql) ? {action: 'allow', once: true} : {action: 'allow'})})
    const raw = await RawClient.connect(once.port, {password: once.secret, database: db.database})
    raw.send(serialize.parse({text: "insert into secrets values (50, 'just once')"}), serialize.bind({}), serialize.execute({}), serialize.sync())
    expect(codes(await raw.untilReady())).toBe('12CZ')
    raw.send(serialize.bind({}), serialize.execute({}), serialize.sync())
    const again = await raw.untilReady()
    expect(codes(again)).toBe('EZ')
    expect(errorOf(again)?.message).toBe('dbgate: this statement was approved for one execution, and it has run')
    raw.send(serialize.parse({text: "insert into secrets values (51, 'just once')"}), serialize.bind({}), serialize.execute({}), serialize.sync())
    expect(codes(await raw.untilReady())).toBe('12CZ')
    const n = await withClient(db.url, (a) => a.query("select count(*)::int n from secrets where v = 'just once'"))
    expect(n.rows[0].n).toBe(2)
    raw.end()
    await once.close()
  })

  it('fails closed when the hook throws', async () => {
    const broken = await startTunnel(db, {
      statement: () => {
        throw new Error('policy engine exploded')
      },
    })
    const c = await broken.client()
    await expect(c.query('select 1')).rejects.toMatchObject({code: '42501', message: /could not be judged/})
    await broken.close()
  })
})
