/**
 * Objects under sessions/ whose lines are JSON envelopes of dbgate events, but whose `data` is not
 * what the event's type holds: a statement whose `sql` is no text, a `session.start` whose data is
 * null, a client nested a hundred thousand levels deep. Whoever can write the bucket can leave one;
 * it must not blind the auditor's commands as a whole (one TypeError or stack overflow, and every
 * session in the bucket went unlisted, unsearched, unverified and unreported). Such a line is a
 * malformed line: readers pass over it, `verify` fails its log with MALFORMED_LINE, and an object
 * with no other line is an unreadable object.
 */
import {readFile, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {gzipSync} from 'node:zlib'
import {afterAll, afterEach, beforeAll, describe, expect, it, vi} from 'vitest'
import {Recorder} from '../../src/audit/recorder.js'
import {shipPending} from '../../src/audit/shipper.js'
import {keyObjectKey, loadOrCreateInstallationKey, publishKey, type InstallationKey} from '../../src/audit/signing.js'
import {FileBucket} from '../../src/bucket/index.js'
import ReportCommand from '../../src/commands/report.js'
import SessionsExport from '../../src/commands/sessions/export.js'
import SessionsList from '../../src/commands/sessions/list.js'
import SessionsSearch from '../../src/commands/sessions/search.js'
import SessionsShow from '../../src/commands/sessions/show.js'
import SessionsVerify from '../../src/commands/sessions/verify.js'
import type {Report} from '../../src/report/model.js'
import {captureCommand} from '../helpers/capture.js'
import {alice, removeTempDirs, stmt, tempDir} from './helpers.js'

const root = join(import.meta.dirname, '..', '..')
const day = 'sessions/dt=2026-03-01/target=prod'
const savedEnv = {...process.env}
let key: InstallationKey
let config: string
let bucketDir: string

const deep = (n: number) => '['.repeat(n) + ']'.repeat(n)
const line = (type: string, seq: number, data: string) =>
  `{"v":1,"type":"${type}","session":"SID","seq":${seq},"ts":"2026-03-01T10:00:0${seq}.000Z","prev":"${'0'.repeat(64)}","data":${data},"hash":"${'0'.repeat(64)}"}`
const start = (sid: string, client = '{"application":"psql","address":"127.0.0.1:1"}') =>
  line('session.start', 1, `{"sessionId":"${sid}","identity":{"subject":"u-mallory","email":"mallory@example.com","groups":[],"issuer":"https://login.example.com","kind":"human"},"target":"prod","database":"app","dbUser":"app_rw","client":${client},"connectionId":1,"startedAt":"2026-03-01T10:00:00.000Z","dbgateVersion":"0.1.0","keyId":"${'0'.repeat(32)}","host":"h"}`)
const statement = (data: string) => line('statement', 2, data)
const okStatement = '{"connectionId":1,"protocol":"simple","sql":"select 1","normalized":"select $1","fingerprint":"0","decision":"allow","startedAt":"2026-03-01T10:00:01.000Z","durationMs":1,"rows":1,"commandTags":["SELECT 1"],"outcome":"ok"}'

/** Each a log an attacker left; its one odd line is the only thing wrong with it. */
const HOSTILE: {name: string; lines: (sid: string) => string[]}[] = [
  {name: 'statement-null', lines: (sid) => [start(sid), statement('null')]},
  {name: 'sql-a-number', lines: (sid) => [start(sid), statement(okStatement.replace('"sql":"select 1"', '"sql":42'))]},
  {name: 'sql-an-object', lines: (sid) => [start(sid), statement(okStatement.replace('"sql":"select 1"', '"sql":{"toString":1}'))]},
  {name: 'tables-a-string', lines: (sid) => [start(sid), statement(okStatement.replace('"decision"', '"tables":"users","decision"'))]},
  {name: 'rows-a-string', lines: (sid) => [start(sid), statement(okStatement.replace('"rows":1', '"rows":"1"'))]},
  {name: 'start-null', lines: (sid) => [line('session.start', 1, 'null'), statement(okStatement)]},
  {name: 'identity-a-string', lines: (sid) => [start(sid).replace(/"identity":\{[^}]*\}/, '"identity":"mallory"'), statement(okStatement)]},
  {name: 'end-null', lines: (sid) => [start(sid), statement(okStatement), line('session.end', 3, 'null')]},
  {name: 'client-deep', lines: (sid) => [start(sid, `{"application":${deep(100_000)},"address":"x"}`), statement(okStatement)]},
  {name: 'approval-deep', lines: (sid) => [start(sid), line('approval.requested', 2, `{"id":"a1","sql":${deep(100_000)}}`), line('statement', 3, okStatement)]},
  {name: 'streaming-null', lines: (sid) => [start(sid), line('statement.streaming', 2, 'null')]},
]

async function record(spoolDir: string, sessionId: string, sqls: string[]) {
  const rec = await Recorder.open({signer: key, dbgateVersion: '0.1.0', spoolDir, checkpointEvery: 0})
  const s = rec.startSession({sessionId, identity: alice, target: 'prod', database: 'app', dbUser: 'app_rw', client: {address: '127.0.0.1:1'}, startedAt: new Date('2026-03-01T10:00:00Z')})
  for (const sql of sqls) s.statement(stmt(sessionId, sql))
  await s.end('client-closed')
}

beforeAll(async () => {
  const dataHome = await tempDir('dbgate-data-')
  Object.assign(process.env, {XDG_DATA_HOME: dataHome, XDG_CACHE_HOME: await tempDir('dbgate-cache-')})
  delete process.env.DBGATE_BUCKET
  delete process.env.DBGATE_CONFIG
  bucketDir = await tempDir('dbgate-bucket-')
  const bucket = new FileBucket(bucketDir)
  config = join(await tempDir('dbgate-config-'), 'dbgate.yaml')
  await writeFile(config, [`bucket: file://${bucketDir}`, 'targets:', '  prod: {host: 127.0.0.1, database: app, user: app_rw}', ''].join('\n'))
  key = await loadOrCreateInstallationKey(join(dataHome, 'dbgate', 'keys'))
  await publishKey(bucket, alice, key)
  const spoolDir = await tempDir('dbgate-spool-')
  await record(spoolDir, 'good-1', ['select * from users where id = 7'])
  expect((await shipPending({bucket, signer: key, spoolDir})).failed).toEqual([])
  for (const h of HOSTILE) await bucket.put(`${day}/${h.name}.jsonl.gz`, gzipSync(h.lines(h.name).join('\n') + '\n'))
}, 60_000)
afterEach(() => {
  vi.restoreAllMocks()
})
afterAll(async () => {
  process.env = savedEnv
  await removeTempDirs()
})

describe('event lines whose data is not what their type holds', () => {
  it('sessions list lists the real session beside them', async () => {
    const list = await captureCommand(() => SessionsList.run(['--config', config], {root}))
    expect(list.stdout).toContain('good-1')
    const json = await captureCommand(() => SessionsList.run(['--config', config, '--json'], {root}))
    const listed = JSON.parse(json.stdout) as {sessions: {sessionId: string}[]; unreadable: {key: string}[]}
    expect(listed.sessions.map((s) => s.sessionId)).toContain('good-1')
  })

  it('sessions search finds the real statement beside them', async () => {
    const r = await captureCommand(() => SessionsSearch.run(['--config', config, 'where id = 7'], {root}))
    expect(r.stdout).toContain('good-1')
  })

  it('sessions export --format csv writes the real statement beside them', async () => {
    const file = join(await tempDir('dbgate-export-'), 'out.csv')
    await captureCommand(() => SessionsExport.run(['--config', config, '--format', 'csv', '-o', file], {root}))
    expect(await readFile(file, 'utf8')).toContain('select * from users where id = 7')
  })

  it('sessions verify passes the real session and fails each of them, naming the line', async () => {
    const r = await captureCommand(() => SessionsVerify.run(['--config', config, '--json'], {root}))
    const results = (JSON.parse(r.stdout) as {sessions: {sessionId?: string; source?: string; ok: boolean; problems: {code: string; message: string}[]}[]}).sessions
    expect(results.find((x) => x.sessionId === 'good-1')).toMatchObject({ok: true})
    for (const h of HOSTILE) {
      const verdict = results.find((x) => x.sessionId === h.name || x.source?.includes(`/${h.name}.jsonl.gz`))
      expect(verdict, h.name).toBeDefined()
      expect(verdict!.ok, h.name).toBe(false)
      expect(verdict!.problems.map((p) => p.code), h.name).toEqual(expect.arrayContaining([expect.stringMatching(/MALFORMED_LINE|OBJECT_UNREADABLE/)]))
    }
    expect(r.exitCode).toBe(1)
  })

  it('sessions show of each prints what it can or says what is wrong, without crashing', async () => {
    for (const h of HOSTILE) {
      const r = await captureCommand(() => SessionsShow.run(['--config', config, h.name], {root}).catch((e: Error) => e))
      const failure = r.result instanceof Error ? r.result.message : ''
      expect(failure, h.name).not.toMatch(/Cannot read properties|Maximum call stack|is not a function|is not iterable/)
    }
  })

  it('sessions list names a log by its first session.start, as the report does, whatever a later one claims', async () => {
    const first = start('two-starts').replace('"u-mallory"', '"u-alice"').replace('mallory@example.com', 'alice@example.com')
    await new FileBucket(bucketDir).put(`${day}/two-starts.jsonl.gz`, gzipSync([first, start('two-starts'), statement(okStatement)].join('\n') + '\n'))
    const json = await captureCommand(() => SessionsList.run(['--config', config, '--json'], {root}))
    const listed = JSON.parse(json.stdout) as {sessions: {sessionId: string; user?: string}[]}
    expect(listed.sessions.find((x) => x.sessionId === 'two-starts')).toMatchObject({user: 'alice@example.com'})
  })

  it('dbgate report is written from the real session, counting the others as failing verification', async () => {
    const out = await tempDir('dbgate-report-out-')
    await captureCommand(() => ReportCommand.run(['--config', config, '--since', '2026-03-01', '--out', out], {root}))
    const report = JSON.parse(await readFile(join(out, 'report.json'), 'utf8')) as Report
    expect(report.sessions.map((s) => s.sessionId)).toContain('good-1')
  })
})

describe('files given to sessions verify --file', () => {
  it('a gzip bomb or a cut gzip fails on its own as OBJECT_UNREADABLE, and the other files are verified', async () => {
    const dir = await tempDir('dbgate-files-')
    const good = await readFile(join(bucketDir, `${day}/good-1.jsonl.gz`))
    const files = {
      good: join(dir, 'good-1.jsonl.gz'),
      // 300 gzip members of a mebibyte of zeros: 300 KiB that inflate to 300 MiB.
      bomb: join(dir, 'bomb.jsonl.gz'),
      cut: join(dir, 'cut.jsonl.gz'),
    }
    await writeFile(files.good, good)
    const megabyteOfZeros = gzipSync(Buffer.alloc(1024 * 1024))
    await writeFile(files.bomb, Buffer.concat(Array.from({length: 300}, () => megabyteOfZeros)))
    await writeFile(files.cut, good.subarray(0, Math.floor(good.length / 2)))
    const keyFile = join(bucketDir, keyObjectKey(key.keyId))
    const r = await captureCommand(() => SessionsVerify.run(['--json', '--file', files.bomb, '--file', files.cut, '--file', files.good, '--key', keyFile], {root}).catch((e: Error) => e))
    expect(r.result instanceof Error ? r.result.message : '').toBe('')
    const results = (JSON.parse(r.stdout) as {sessions: {source: string; ok: boolean; problems: {code: string; message: string}[]}[]}).sessions
    expect(results.find((x) => x.source === 'good-1.jsonl.gz')).toMatchObject({ok: true})
    expect(results.find((x) => x.source === 'bomb.jsonl.gz')).toMatchObject({ok: false, problems: [{code: 'OBJECT_UNREADABLE', message: expect.stringMatching(/inflates to more than 256 MiB/)}]})
    expect(results.find((x) => x.source === 'cut.jsonl.gz')).toMatchObject({ok: false, problems: [{code: 'OBJECT_UNREADABLE', message: expect.stringMatching(/gzip cut short/)}]})
    expect(r.exitCode).toBe(1)
  })
})
