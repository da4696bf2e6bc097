import {gunzipSync, gzipSync} from 'node:zlib'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import SessionsList from '../../src/commands/sessions/list.js'
import SessionsSearch from '../../src/commands/sessions/search.js'
import {FileBucket} from '../../src/bucket/index.js'
import type {Report} from '../../src/report/model.js'
import ReportCommand from '../../src/commands/report.js'
import {produceReport} from '../../src/report/produce.js'
import {captureCommand} from '../helpers/capture.js'
import {removeTempDirs, tempDir} from '../audit/helpers.js'
import {ada, bob, ci, recordFixture, type FixtureSession} from './fixture.js'

/**
 * A report took the sessions that *started* in its period. A session opened at 23:45 the evening
 * before, left idle, then used to drop a table at 00:10 was in no report of the period that held the
 * DROP: the previous period's, written while the session ran, had it only up to then. A hostile
 * client needs nothing but timing for that. And a log whose session.start line was cut off had no
 * start time, so every report (which always has a period) left it out: the log failed `verify`, but
 * nothing in the report said it existed. The report now takes a session started before the period
 * with what it recorded from the period's start on (and says so), and places a log without a start
 * by its key's day.
 */
const savedEnv = {...process.env}
const since = new Date('2026-10-01T00:00:00Z')
const until = new Date('2026-10-31T23:59:59.999Z')
const at = (iso: string) => new Date(iso)

const SESSIONS: FixtureSession[] = [
  // Opened the evening before, a read then; the DROP after midnight, in the period.
  {id: 'pre-drop', identity: ada, target: 'prod', start: at('2026-09-30T23:45:00Z'), ending: 'ended', statements: [
    {sql: 'SELECT id FROM customers', at: at('2026-09-30T23:50:00Z'), class: 'read', decision: 'allow', rows: 3, tables: ['customers']},
    {sql: 'DROP TABLE customers', at: at('2026-10-01T00:10:00Z'), class: 'ddl', decision: 'allow', tables: ['customers']},
  ]},
  // Still running when shipped: a TRUNCATE in the period.
  {id: 'pre-live', identity: ci, target: 'prod', start: at('2026-09-30T23:00:00Z'), ending: 'in-progress', statements: [
    {sql: 'SELECT 1', at: at('2026-09-30T23:01:00Z'), class: 'read', decision: 'allow', rows: 1},
    {sql: 'TRUNCATE orders', at: at('2026-10-01T02:00:00Z'), class: 'ddl', decision: 'allow', tables: ['orders']},
  ]},
  // Wholly before the period: not in it.
  {id: 'pre-idle', identity: bob, target: 'prod', start: at('2026-09-30T22:00:00Z'), ending: 'ended', statements: [{sql: 'DELETE FROM carts', at: at('2026-09-30T22:05:00Z'), class: 'write', decision: 'allow'}]},
  {id: 'oct-normal', identity: ada, target: 'prod', start: at('2026-10-05T09:00:00Z'), ending: 'ended', statements: [{sql: 'SELECT 2', at: at('2026-10-05T09:00:01Z'), class: 'read', decision: 'allow', rows: 1}]},
  {id: 'oct-headless', identity: bob, target: 'prod', start: at('2026-10-06T09:00:00Z'), ending: 'ended', statements: [{sql: 'DROP TABLE invoices', at: at('2026-10-06T09:00:01Z'), class: 'ddl', decision: 'allow', tables: ['invoices']}]},
]

describe('a report period and the sessions across its edges', () => {
  let bucket: FileBucket
  let report: Report
  let tempOut: string

  beforeAll(async () => {
    bucket = new FileBucket(await tempDir('dbgate-edges-bucket-'))
    tempOut = await tempDir('dbgate-edges-out2-')
    Object.assign(process.env, {XDG_CACHE_HOME: await tempDir('dbgate-edges-xdg-')})
    delete process.env.DBGATE_BUCKET
    delete process.env.DBGATE_CONFIG
    await recordFixture(SESSIONS, bucket, tempDir)
    // Someone who can write the bucket cuts the session.start line off one log.
    const headless = 'sessions/dt=2026-10-06/target=prod/oct-headless.jsonl.gz'
    const text = gunzipSync((await bucket.get(headless)).body).toString('utf8')
    await bucket.put(headless, gzipSync(text.slice(text.indexOf('\n') + 1)))
    ;({report} = await produceReport({bucket, cacheDir: await tempDir('dbgate-edges-cache-'), since, until, frameworks: ['soc2'], outDir: await tempDir('dbgate-edges-out-'), generator: 'dbgate test', now: new Date('2026-11-01T08:00:00Z')}))
  })
  afterAll(async () => {
    process.env = savedEnv
    await removeTempDirs()
  })

  it('counts what a session started before the period did in it, and only that', () => {
    expect(report.sessions.map((s) => s.sessionId).sort()).toEqual(['oct-headless', 'oct-normal', 'pre-drop', 'pre-live'])
    expect(report.sessions.find((s) => s.sessionId === 'pre-drop')?.statements).toBe(1)
    expect(report.sessions.find((s) => s.sessionId === 'pre-live')?.statements).toBe(1)
    expect(report.summary.statements).toBe(4)
    expect(report.attempts.map((a) => [a.sessionId, a.what]).sort()).toEqual([
      ['oct-headless', 'DROP TABLE'],
      ['pre-drop', 'DROP TABLE'],
      ['pre-live', 'TRUNCATE'],
    ])
    expect(report.attempts.find((a) => a.sessionId === 'pre-drop')?.at).toBe('2026-10-01T00:10:00.000Z')
  })

  it('says a session started before the period, and that the rest of it is in the previous report', () => {
    for (const id of ['pre-drop', 'pre-live']) {
      const row = report.attention.find((a) => a.sessionId === id)
      expect(row?.reasons.join(' '), id).toMatch(/started before the period \(2026-09-30T2\d:\d\d:00\.000Z\).*previous period/)
    }
  })

  it('lists a log whose start was cut off, as failing verification', () => {
    const row = report.integrity.find((i) => i.sessionId === 'oct-headless')
    expect(row?.result).toBe('failed')
    expect(row?.problems.map((p) => p.code)).toContain('MISSING_START')
    expect(report.gaps.find((g) => g.kind === 'verification-failed')?.sessions).toContain('oct-headless')
  })

  it('refuses a time of day without its zone, which JavaScript would read in the machine\'s zone', async () => {
    const tz = process.env.TZ
    process.env.TZ = 'America/Los_Angeles'
    try {
      const root = new URL('../..', import.meta.url).pathname
      for (const when of ['2026-10-01T00:00:00', '2026-10-01 00:00', '2026-10-01T00:00:00.000']) {
        const out = await tempDir('dbgate-edges-tz-')
        const e = (await captureCommand(() => ReportCommand.run(['--bucket', bucket.url, '--since', when, '--until', '2026-10-31', '--out', out], {root})).catch((err: Error) => err)) as Error
        expect(e, when).toBeInstanceOf(Error)
        expect(e.message, when).toMatch(/with its zone; write e\.g\. 2026-01-31T08:00:00Z/)
      }
      // With its zone, or as a UTC day, the period is what was written wherever the auditor is.
      const r = await captureCommand(() => ReportCommand.run(['--bucket', bucket.url, '--since', '2026-10-01T00:00:00Z', '--until', '2026-10-31', '--out', tempOut, '--json'], {root}))
      expect((r.result as {summary: {statements: number}}).summary.statements).toBe(4)
    } finally {
      if (tz === undefined) delete process.env.TZ
      else process.env.TZ = tz
    }
  })

  it('sessions search --since finds the statements run since, in sessions started before too', async () => {
    const root = new URL('../..', import.meta.url).pathname
    const r = await captureCommand(() => SessionsSearch.run(['--bucket', bucket.url, '--since', '2026-10-01', '--until', '2026-10-31', '--json'], {root}))
    const found = (JSON.parse(r.stdout) as {matches: {sessionId: string; sql: string}[]}).matches.map((m) => `${m.sessionId}: ${m.sql}`)
    expect(found.sort()).toEqual(['oct-headless: DROP TABLE invoices', 'oct-normal: SELECT 2', 'pre-drop: DROP TABLE customers', 'pre-live: TRUNCATE orders'])
    const before = await captureCommand(() => SessionsSearch.run(['--bucket', bucket.url, '--until', '2026-09-30', '--json', 'customers'], {root}))
    expect((JSON.parse(before.stdout) as {matches: {sql: string}[]}).matches.map((m) => m.sql)).toEqual(['SELECT id FROM customers'])
  })

  it('sessions list --since shows the log whose start was cut off', async () => {
    const r = await captureCommand(() => SessionsList.run(['--bucket', bucket.url, '--since', '2026-10-02', '--json'], {root: new URL('../..', import.meta.url).pathname}))
    const ids = (JSON.parse(r.stdout) as {sessions: {sessionId: string}[]}).sessions.map((s) => s.sessionId)
    expect(ids).toContain('oct-headless')
    expect(ids).not.toContain('pre-drop')
  })
})
