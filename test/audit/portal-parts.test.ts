import path from 'node:path'
import {serialize} from 'pg-protocol'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {StatementData} from '../../src/audit/events.js'
import type {SearchMatch} from '../../src/audit/read.js'
import SessionsList from '../../src/commands/sessions/list.js'
import SessionsSearch from '../../src/commands/sessions/search.js'
import SessionsShow from '../../src/commands/sessions/show.js'
import {captureCommand} from '../helpers/capture.js'
import type {PipelineTunnel} from '../helpers/open.js'
import {withClient, type UpstreamInfo} from '../helpers/pg.js'
import {codes, errorOf, type RawClient} from '../helpers/raw-client.js'
import {recordedRawTunnel, recordedStatements} from './helpers.js'

/**
 * A write with RETURNING runs whole at its portal's first Execute, however few rows the client asks
 * for. Fetched in parts, its recording said `rows: 1` and nothing else: an auditor read one row
 * deleted where a hundred were. And the server keeps protocol portals and SQL cursors in one
 * namespace: a portal bound from `DELETE … RETURNING`, then run by `FETCH 2 FROM q`, deleted every
 * row it matched while the recording said its Bind was never executed. Parts are now marked
 * `suspended` (shown beside the statement), and a protocol portal runs only by Execute.
 */
const root = path.join(import.meta.dirname, '..', '..')
const savedEnv = {...process.env}
const left = (db: UpstreamInfo, lo: number, hi: number) => withClient(db.url, async (c) => Number((await c.query('select count(*)::int n from jobs where id between $1 and $2', [lo, hi])).rows[0].n))

describe('portals run in parts, and portals run by SQL', () => {
  let db: UpstreamInfo
  let t: PipelineTunnel | undefined
  let raw: RawClient
  let bucketUrl: string

  beforeAll(async () => {
    ;({db, t, raw, bucketUrl} = await recordedRawTunnel('portalparts', 'create table jobs (id int primary key); insert into jobs select generate_series(1, 2000)'))
  }, 60_000)
  afterAll(async () => {
    await t?.close()
    process.env = savedEnv
  })

  const send = async (...messages: Buffer[]) => {
    raw.send(...messages)
    return raw.untilReady()
  }

  // Each way of running a bound portal by SQL: the range each would delete is left whole.
  const FETCHES: {name: string; lo: number; messages: (lo: number) => Buffer[][]}[] = [
    {name: 'FETCH n FROM', lo: 1001, messages: () => [[serialize.query('fetch 2 from q')]]},
    {name: 'MOVE ALL IN', lo: 1101, messages: () => [[serialize.query('move all in q')]]},
    {name: 'FETCH with a quoted name, upper case', lo: 1201, messages: () => [[serialize.query('FETCH FORWARD 1 "q"')]]},
    {name: 'FETCH after another statement in one text', lo: 1301, messages: () => [[serialize.query('select 1; fetch next from q')]]},
    {name: 'a protocol statement that fetches', lo: 1401, messages: () => [[serialize.parse({name: 'f', text: 'fetch 3 from q'}), serialize.bind({statement: 'f'}), serialize.execute({}), serialize.sync()], [serialize.query('deallocate f')]]},
    {
      name: 'a fetching statement prepared before the portal was bound',
      lo: 1501,
      messages: () => [[serialize.parse({name: 'g', text: 'fetch 3 from q'}), serialize.sync()], [serialize.bind({statement: 'g'}), serialize.execute({}), serialize.sync()], [serialize.query('deallocate g')]],
    },
  ]

  it.each(FETCHES)('refuses to run a portal bound from a write by SQL: $name', async ({lo, messages}) => {
    const before = await left(db, lo, lo + 49)
    expect(before).toBe(50)
    const first = messages(lo)
    // A fetching statement prepared first exists before the portal does.
    const prepareFirst = first.length === 3
    if (prepareFirst) expect(codes(await send(...first[0]!))).toBe('1Z')
    expect(codes(await send(serialize.query('begin')))).toContain('Z')
    expect(codes(await send(serialize.parse({text: `delete from jobs where id between ${lo} and ${lo + 49} returning id`}), serialize.bind({portal: 'q'}), serialize.sync()))).toBe('12Z')
    const reply = await send(...first[prepareFirst ? 1 : 0]!)
    expect(errorOf(reply)).toMatchObject({code: '0A000', message: expect.stringContaining('FETCH and MOVE in portal "q" are not allowed through the tunnel')})
    await send(serialize.query('rollback'))
    for (const rest of first.slice(prepareFirst ? 2 : 1)) await send(...rest)
    expect(await left(db, lo, lo + 49)).toBe(50)
  })

  it('still fetches and moves in a declared cursor', async () => {
    await send(serialize.query('begin; declare c cursor for select id from jobs where id <= 10 order by id'))
    const fetched = await send(serialize.query('fetch 3 from c; move 2 in c; fetch 1 from c'))
    expect(errorOf(fetched)).toBeUndefined()
    expect(codes(fetched)).toBe('TDDDCCTDCZ')
    await send(serialize.query('commit'))
  })

  it('records each part of a write fetched at a row limit as suspended, and the auditor is told', async () => {
    // 100 rows deleted: the client takes 1, then closes the portal with its transaction.
    expect(codes(await send(serialize.parse({text: 'delete from jobs where id between 1 and 100 returning id'}), serialize.bind({}), serialize.execute({rows: 1}), serialize.sync()))).toBe('12DsZ')
    // 100 more, taken as 1, 2, then the rest.
    expect(codes(await send(serialize.parse({text: 'delete from jobs where id between 101 and 200 returning id'}), serialize.bind({}), serialize.execute({rows: 1}), serialize.execute({rows: 2}), serialize.execute({}), serialize.sync()))).toMatch(/^12DsDDsD+CZ$/)
    expect(await left(db, 1, 200)).toBe(0)
    await t!.close()
    t = undefined

    const rec = (sql: string): Promise<StatementData[]> => recordedStatements(bucketUrl).then((all) => all.filter((s) => s.sql === sql))
    const first = await rec('delete from jobs where id between 1 and 100 returning id')
    expect(first.map((s) => [s.rows, s.suspended ?? false, s.commandTags])).toEqual([[1, true, []]])
    const second = await rec('delete from jobs where id between 101 and 200 returning id')
    expect(second.map((s) => [s.rows, s.suspended ?? false])).toEqual([[1, true], [2, true], [97, false]])

    const r = await captureCommand(() => SessionsSearch.run(['--bucket', bucketUrl, '--json', 'delete from jobs where id between 1 and'], {root}))
    const found = (JSON.parse(r.stdout) as {matches: SearchMatch[]}).matches
    expect(found.map((m) => m.suspended ?? false)).toEqual([true])
    // Shown beside the statement, as the auditor reads the session.
    const {sessions} = JSON.parse((await captureCommand(() => SessionsList.run(['--bucket', bucketUrl, '--json'], {root}))).stdout) as {sessions: {sessionId: string}[]}
    expect(sessions).toHaveLength(1)
    const shown = (await captureCommand(() => SessionsShow.run([sessions[0]!.sessionId, '--bucket', bucketUrl], {root}))).stdout
    const lineOf = (sql: string) => shown.split('\n').filter((l, i, all) => all[i + 1]?.trim() === sql && l.includes(' ALLOW'))
    expect(lineOf('delete from jobs where id between 1 and 100 returning id')).toEqual([expect.stringContaining("SUSPENDED at the client's row limit")])
    const parts = lineOf('delete from jobs where id between 101 and 200 returning id')
    expect(parts.map((l) => l.includes('SUSPENDED'))).toEqual([true, true, false])
    // The FETCHes were refused, so their portals' Binds did run nothing: recorded as bound, never executed.
    const bound = (await recordedStatements(bucketUrl)).filter((s) => /^delete from jobs where id between 1[0-5]01 and/.test(s.sql))
    expect(bound.map((s) => s.outcome)).toEqual(FETCHES.map(() => 'bound'))
    // A refused Execute ran nothing, but its Bind planned the statement: that Bind is recorded as such.
    const fetching = (await recordedStatements(bucketUrl)).filter((s) => s.sql === 'fetch 3 from q')
    expect(fetching.map((s) => s.outcome).sort()).toEqual(['bound', 'bound', 'rejected', 'rejected'])
  }, 60_000)
})
