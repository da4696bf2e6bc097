import net from 'node:net'
import {Readable, Writable} from 'node:stream'
import {pipeline} from 'node:stream/promises'
import {from as copyFrom, to as copyTo} from 'pg-copy-streams'
import {serialize} from 'pg-protocol'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {decodeCommandComplete, decodeDataRow, decodeParameterStatus} from '../../src/wire/backend.js'
import {encodeCancelRequest} from '../../src/wire/frontend.js'
import {createTestDatabase, waitUntilSleeping, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {codes, errorOf, RawClient} from '../helpers/raw-client.js'
import {startTunnel, type TestTunnel} from '../helpers/tunnel.js'
import {waitFor} from '../helpers/wait.js'

describe('the tunnel speaks the protocol', () => {
  let db: UpstreamInfo
  let t: TestTunnel
  beforeAll(async () => {
    db = await createTestDatabase()
    await withClient(db.url, (c) => c.query('create table items (id int primary key, name text)'))
    t = await startTunnel(db)
  })
  afterAll(() => t.close())

  it('runs every statement of a multi-statement simple query', async () => {
    const raw = await RawClient.connect(t.port, {password: t.secret, database: db.database})
    raw.send(serialize.query("insert into items values (1, 'a'); insert into items values (2, 'b'); select count(*) from items"))
    const msgs = await raw.untilReady()
    expect(codes(msgs)).toBe('CCTDCZ')
    expect(decodeCommandComplete(msgs[0]!.body)).toBe('INSERT 0 1')
    expect(decodeDataRow(msgs[3]!.body)[0]!.toString()).toBe('2')
    raw.end()
  })

  it('runs extended-protocol queries with parameters, named statements and portals', async () => {
    const c = await t.client()
    const r = await c.query({name: 'by-id', text: 'select name from items where id = $1', values: [2]})
    expect(r.rows).toEqual([{name: 'b'}])
    const again = await c.query({name: 'by-id', text: 'select name from items where id = $1', values: [1]})
    expect(again.rows).toEqual([{name: 'a'}])
    const typed = await c.query('select $1::int[] as a, $2::jsonb as j, $3::bytea as b', [[1, 2], {k: 'v'}, Buffer.from([0, 255])])
    expect(typed.rows[0]).toEqual({a: [1, 2], j: {k: 'v'}, b: Buffer.from([0, 255])})
  })

  it('answers a pipelined batch of extended-protocol messages in order', async () => {
    const raw = await RawClient.connect(t.port, {password: t.secret, database: db.database})
    const batch: Buffer[] = []
    for (let i = 0; i < 3; i++) {
      batch.push(serialize.parse({text: `select ${i} + $1::int`, types: []}), serialize.bind({values: ['10']}), serialize.describe({type: 'P'}), serialize.execute({}), serialize.sync())
    }
    raw.send(...batch)
    for (let i = 0; i < 3; i++) {
      const msgs = await raw.untilReady()
      expect(codes(msgs)).toBe('12TDCZ')
      expect(decodeDataRow(msgs[3]!.body)[0]!.toString()).toBe(String(10 + i))
    }
    raw.end()
  })

  it('serves node-postgres in pipeline mode', async () => {
    const c = await t.client({pipeline: true} as object)
    const results = await Promise.all(Array.from({length: 20}, (_, i) => c.query('select $1::int * 2 as doubled', [i])))
    expect(results.map((r) => r.rows[0].doubled)).toEqual(Array.from({length: 20}, (_, i) => i * 2))
    const mixed = await Promise.allSettled([c.query('select 1 as a'), c.query('select * from no_such_table'), c.query('select 3 as c')])
    expect(mixed.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled'])
  })

  it('copies data both ways with node-postgres (pg-copy-streams)', async () => {
    const c = await t.client()
    await c.query('create table copied (id int, label text)')
    const rows = Array.from({length: 1000}, (_, i) => `${i}\tlabel-${i}\n`).join('')
    await pipeline(Readable.from([rows]), c.query(copyFrom('copy copied from stdin')))
    expect((await c.query('select count(*)::int n, sum(id)::int s from copied')).rows[0]).toEqual({n: 1000, s: 499500})
    let out = ''
    await pipeline(
      c.query(copyTo('copy (select * from copied order by id) to stdout')),
      new Writable({
        write(chunk, _enc, cb) {
          out += chunk
          cb()
        },
      }),
    )
    expect(out).toBe(rows)
  })

  it('handles portals fetched in pieces (Execute with a row limit)', async () => {
    const raw = await RawClient.connect(t.port, {password: t.secret, database: db.database})
    raw.send(serialize.query('begin'))
    await raw.untilReady()
    raw.send(
      serialize.parse({name: 's1', text: 'select g from generate_series(1, 5) g'}),
      serialize.bind({statement: 's1', portal: 'p1'}),
      serialize.execute({portal: 'p1', rows: 2}),
      serialize.execute({portal: 'p1', rows: 2}),
      serialize.execute({portal: 'p1', rows: 2}),
      serialize.sync(),
    )
    const msgs = await raw.untilReady()
    expect(codes(msgs)).toBe('12DDsDDsDCZ')
    raw.send(serialize.query('commit'))
    await raw.untilReady()
    raw.end()
  })

  it('copies data in with COPY FROM STDIN and out with COPY TO STDOUT', async () => {
    const raw = await RawClient.connect(t.port, {password: t.secret, database: db.database})
    raw.send(serialize.query('copy items from stdin'))
    expect((await raw.next()).code).toBe('G')
    raw.send(serialize.copyData(Buffer.from('10\tten\n11\televen\n')), serialize.copyData(Buffer.from('12\ttwelve\n')), serialize.copyDone())
    const done = await raw.untilReady()
    expect(decodeCommandComplete(done[0]!.body)).toBe('COPY 3')
    raw.send(serialize.query('copy (select id, name from items where id >= 10 order by id) to stdout'))
    const out = await raw.untilReady()
    expect(codes(out)).toBe('HdddcCZ')
    const text = out.filter((m) => m.code === 'd').map((m) => m.body.toString()).join('')
    expect(text).toBe('10\tten\n11\televen\n12\ttwelve\n')
    raw.end()
  })

  it('reports a failed COPY FROM STDIN and stays usable', async () => {
    const raw = await RawClient.connect(t.port, {password: t.secret, database: db.database})
    raw.send(serialize.query('copy items from stdin'))
    await raw.next()
    raw.send(serialize.copyData(Buffer.from('20\tx\n')), serialize.copyFail('client gave up'))
    const msgs = await raw.untilReady()
    expect(errorOf(msgs)?.message).toMatch(/client gave up/)
    raw.send(serialize.query('select count(*) from items where id = 20'))
    const after = await raw.untilReady()
    expect(decodeDataRow(after[1]!.body)[0]!.toString()).toBe('0')
    raw.end()
  })

  it('delivers LISTEN/NOTIFY notifications and notices', async () => {
    const listener = await t.client()
    const notifier = await t.client()
    await listener.query('listen jobs')
    const got = new Promise<{channel: string; payload?: string}>((resolve) => listener.once('notification', resolve))
    await notifier.query("select pg_notify('jobs', 'job-42')")
    const n = await got
    expect(n).toMatchObject({channel: 'jobs', payload: 'job-42'})

    const notice = new Promise<{message?: string}>((resolve) => notifier.once('notice', resolve))
    await notifier.query("do $$ begin raise notice 'hello from the server'; end $$")
    expect((await notice).message).toBe('hello from the server')
  })

  it('relays ParameterStatus changes', async () => {
    const raw = await RawClient.connect(t.port, {password: t.secret, database: db.database})
    raw.send(serialize.query("set application_name = 'renamed'"))
    const msgs = await raw.untilReady()
    const ps = msgs.filter((m) => m.code === 'S').map((m) => decodeParameterStatus(m.body))
    expect(ps).toContainEqual({name: 'application_name', value: 'renamed'})
    raw.end()
  })

  it('gives the client its own cancel key and maps cancel requests to the upstream', async () => {
    const c = await t.client()
    const upstreamPid = (await c.query('select pg_backend_pid() as pid')).rows[0].pid as number
    const tunnelPid = (c as unknown as {processID: number}).processID
    const secretKey = (c as unknown as {secretKey: number}).secretKey
    expect(tunnelPid).not.toBe(upstreamPid)
    const slow = c.query('select pg_sleep(30)').then(
      () => 'finished',
      (e: {code?: string}) => e.code,
    )
    await waitUntilSleeping(db.url, {pid: upstreamPid})
    const s = net.connect({host: '127.0.0.1', port: t.port})
    await new Promise((r) => s.once('connect', r))
    s.end(encodeCancelRequest(tunnelPid, secretKey))
    expect(await slow).toBe('57014')
    expect((await c.query('select 1 as ok')).rows).toEqual([{ok: 1}])
  })

  it('ignores a cancel request with a wrong key', async () => {
    const c = await t.client()
    const upstreamPid = (await c.query('select pg_backend_pid() as pid')).rows[0].pid as number
    const tunnelPid = (c as unknown as {processID: number}).processID
    const secretKey = (c as unknown as {secretKey: number}).secretKey
    const ignored = () => t.logs.filter((l) => l.includes('ignored a cancel request with an unknown key')).length
    const ignoredBefore = ignored()
    const q = c.query('select pg_sleep(2) as slept').then(
      (r) => r.rows.length,
      (e: {code?: string}) => e.code,
    )
    // The statement is running when the cancel comes, so a cancel let through would end it.
    await waitUntilSleeping(db.url, {pid: upstreamPid})
    const s = net.connect({host: '127.0.0.1', port: t.port})
    await new Promise((r) => s.once('connect', r))
    s.end(encodeCancelRequest(tunnelPid, secretKey ^ 1))
    // Either the tunnel says it ignored the cancel, or the statement ends (cancelled) first.
    await Promise.race([waitFor(() => ignored() > ignoredBefore, 'the tunnel has judged the cancel request'), q])
    expect(await q).toBe(1)
  })

  it('refuses the FunctionCall message and keeps the session usable', async () => {
    const raw = await RawClient.connect(t.port, {password: t.secret, database: db.database})
    const body = Buffer.alloc(4 + 2 + 2 + 2)
    body.writeUInt32BE(1598, 0) // pg_backend_pid's OID; any function
    const fc = Buffer.concat([Buffer.from('F'), Buffer.from([0, 0, 0, 4 + body.length]), body])
    raw.send(fc)
    const msgs = await raw.untilReady()
    expect(codes(msgs)).toBe('EZ')
    expect(errorOf(msgs)).toMatchObject({code: '0A000'})
    expect(errorOf(msgs)?.message).toMatch(/FunctionCall/)
    raw.send(serialize.query('select 1'))
    expect(codes(await raw.untilReady())).toBe('TDCZ')
    raw.end()
  })

  it('closes the upstream session when the client sends Terminate', async () => {
    const before = await withClient(db.url, async (c) => (await c.query("select count(*)::int n from pg_stat_activity where datname = $1", [db.database])).rows[0].n as number)
    const raw = await RawClient.connect(t.port, {password: t.secret, database: db.database})
    raw.send(serialize.end())
    await raw.waitClosed()
    await waitFor(
      async () => (await withClient(db.url, async (c) => (await c.query("select count(*)::int n from pg_stat_activity where datname = $1", [db.database])).rows[0].n as number)) <= before,
      'the upstream session is gone from pg_stat_activity',
    )
  })

  it('tells the upstream who is connecting through application_name', async () => {
    const c = await t.client({application_name: 'report-job'})
    const r = await c.query('select current_setting($1) as app', ['application_name'])
    expect(r.rows[0].app).toBe('dbgate/report-job')
  })

  it('serves 200 concurrent clients when its caps allow them', async () => {
    const wide = await startTunnel(db, {}, {limits: {maxClientConnections: 200, maxUpstreamSessions: 200}})
    const clients = await Promise.all(Array.from({length: 200}, () => wide.client()))
    const results = await Promise.all(clients.map((c, i) => c.query('select $1::int as i, pg_backend_pid() as pid', [i])))
    expect(results.map((r) => r.rows[0].i)).toEqual(Array.from({length: 200}, (_, i) => i))
    expect(new Set(results.map((r) => r.rows[0].pid)).size).toBe(200)
    await wide.close()
  })

  it('answers SSLRequest with N so clients continue in the clear on loopback', async () => {
    const c = await t.client({ssl: false})
    expect((await c.query('select 1 as x')).rows[0].x).toBe(1)
    const raw = await RawClient.open(t.port)
    raw.socket.write(Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]))
    const answer = await new Promise<Buffer>((resolve) => raw.socket.once('data', resolve))
    expect(answer.toString()).toBe('N')
    raw.end()
  })
})
