/**
 * One object under sessions/ that is not a readable log (written by an attacker, or damaged) must
 * not blind the auditor's commands: every readable session is still listed, searched, verified and
 * reported, and each unreadable object is named, with the exit code and the report saying so.
 */
import {readFile, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {gunzipSync, gzipSync} from 'node:zlib'
import {PutObjectCommand, S3Client} from '@aws-sdk/client-s3'
import {afterAll, afterEach, beforeAll, describe, expect, it, vi} from 'vitest'
import {Recorder} from '../../src/audit/recorder.js'
import {createRecordingHooks} from '../../src/audit/recording-hooks.js'
import {spoolStatus} from '../../src/audit/spool-scan.js'
import {shipPending} from '../../src/audit/shipper.js'
import {loadOrCreateInstallationKey, publishKey, type InstallationKey} from '../../src/audit/signing.js'
import type {S3Bucket} from '../../src/bucket/index.js'
import ReportCommand from '../../src/commands/report.js'
import SessionsList from '../../src/commands/sessions/list.js'
import SessionsExport from '../../src/commands/sessions/export.js'
import SessionsSearch from '../../src/commands/sessions/search.js'
import SessionsShow from '../../src/commands/sessions/show.js'
import SessionsVerify from '../../src/commands/sessions/verify.js'
import type {Report} from '../../src/report/model.js'
import {createTestDatabase} from '../helpers/pg.js'
import {startTunnel, type TestTunnel} from '../helpers/tunnel.js'
import {waitFor} from '../helpers/wait.js'
import {alice, removeTempDirs, stmt, tempDir} from './helpers.js'
import {TestS3} from './s3rver.js'
import {captureCommand} from '../helpers/capture.js'

const root = join(import.meta.dirname, '..', '..')
const day = 'sessions/dt=2026-03-01/target=prod'
const savedEnv = {...process.env}
let s3: TestS3
let bucket: S3Bucket
let key: InstallationKey
let config: string
let tunnel: TestTunnel | undefined
/** The session recorded through a real tunnel; the others are written by the recorder directly. */
let viaTunnel: string
/** Every readable session, sorted. */
let readable: string[]

/** What an attacker (or a damaged upload) can leave beside the real logs, and what the auditor is told about each. */
const planted: {name: string; key: string; problem: RegExp}[] = [
  {name: 'not gzip', key: `${day}/not-gzip.jsonl.gz`, problem: /not gzip \(\d+ bytes that do not start with the gzip header\)/},
  {name: 'truncated gzip', key: `${day}/cut-short.jsonl.gz`, problem: /gzip cut short/},
  {name: 'gzip of text that is no event', key: `${day}/not-json.jsonl.gz`, problem: /no line is a dbgate event \(line 1: /},
  {name: 'empty object', key: `${day}/empty.jsonl.gz`, problem: /empty object \(0 bytes\)/},
  {name: 'gzip bomb', key: `${day}/bomb.jsonl.gz`, problem: /inflates to more than 256 MiB/},
  {name: 'key that does not parse', key: 'sessions/dt=2026-03-01/target=%E0%A4%A/bad-target.jsonl.gz', problem: /target= in the key is not valid URL encoding/},
  {name: 'not a log name', key: 'sessions/notes.txt', problem: /not a session log name/},
  {name: 'key dbgate does not fetch', key: `${day}/back\\slash.jsonl.gz`, problem: /a key dbgate does not read \(.*a backslash/},
  {name: 'key with markup and a terminal escape', key: `${day}/<img src=x onerror=alert(1)>|*\x1b[2J.jsonl.gz`, problem: /not gzip/},
]

async function record(spoolDir: string, sessionId: string, sqls: string[]) {
  const rec = await Recorder.open({signer: key, dbgateVersion: '0.1.0', spoolDir, checkpointEvery: 0})
  const s = rec.startSession({sessionId, identity: alice, target: 'prod', database: 'app', dbUser: 'app_rw', client: {address: '127.0.0.1:1'}, startedAt: new Date('2026-03-01T10:00:00Z')})
  for (const sql of sqls) s.statement(stmt(sessionId, sql))
  await s.end('client-closed')
}


beforeAll(async () => {
  const dataHome = await tempDir('dbgate-data-')
  Object.assign(process.env, {XDG_DATA_HOME: dataHome, XDG_CACHE_HOME: await tempDir('dbgate-cache-'), AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1'})
  delete process.env.DBGATE_BUCKET
  delete process.env.DBGATE_CONFIG
  s3 = await TestS3.start()
  bucket = s3.bucket('audit')
  config = join(await tempDir('dbgate-config-'), 'dbgate.yaml')
  await writeFile(config, ['bucket:', `  url: s3://${s3.bucketName}/audit`, `  endpoint: ${s3.endpoint}`, '  forcePathStyle: true', '  region: us-east-1', 'targets:', '  prod: {host: 127.0.0.1, database: app, user: app_rw}', ''].join('\n'))

  key = await loadOrCreateInstallationKey(join(dataHome, 'dbgate', 'keys'))
  await publishKey(bucket, alice, key)
  const spoolDir = await tempDir('dbgate-spool-')
  await record(spoolDir, 'good-1', ['select * from users', 'drop table users'])
  await record(spoolDir, 'good-2', ['select * from orders'])
  await record(spoolDir, 'mid-bad', ['select 1', 'select 2', 'select 3'])

  const db = await createTestDatabase('unreadable')
  const recorder = await Recorder.open({signer: key, dbgateVersion: '0.1.0', spoolDir})
  tunnel = await startTunnel(db, createRecordingHooks(recorder, {identity: alice, target: 'prod', describe: () => ({class: 'read'})}))
  const client = await tunnel.client({application_name: 'beside-garbage'})
  await client.query('select 42 as answer from pg_class limit 1')
  await client.end()
  await waitFor(async () => (await spoolStatus(spoolDir)).sessions.filter((s) => s.state === 'ended').length === 4, 'the tunnel session is sealed')
  viaTunnel = (await spoolStatus(spoolDir)).sessions.map((s) => s.sessionId).find((id) => !['good-1', 'good-2', 'mid-bad'].includes(id))!
  expect((await shipPending({bucket, signer: key, spoolDir})).failed).toEqual([])
  readable = ['good-1', 'good-2', 'mid-bad', viaTunnel].sort()

  // A signed log with one line in the middle replaced: still a session, which verify fails.
  const midKey = `${day}/mid-bad.jsonl.gz`
  const lines = gunzipSync((await bucket.get(midKey)).body).toString('utf8').split('\n')
  lines[2] = 'this line is not JSON'
  await bucket.put(midKey, gzipSync(lines.join('\n')))

  const good = (await bucket.get(`${day}/good-1.jsonl.gz`)).body
  const megabyteOfZeros = gzipSync(Buffer.alloc(1024 * 1024))
  const bodies: Record<string, Buffer | string> = {
    'not gzip': 'SELECT this is not gzip\n',
    'truncated gzip': good.subarray(0, Math.floor(good.length / 2)),
    'gzip of text that is no event': gzipSync('\x1b[2Jhello\n<b>not an event</b>\n'),
    'empty object': '',
    // 300 gzip members of a mebibyte of zeros each: 300 KiB that inflate to 300 MiB.
    'gzip bomb': Buffer.concat(Array.from({length: 300}, () => megabyteOfZeros)),
    'key that does not parse': good,
    'not a log name': 'notes an operator left here\n',
    'key with markup and a terminal escape': 'junk',
  }
  for (const p of planted.filter((p) => p.name !== 'key dbgate does not fetch')) await bucket.put(p.key, bodies[p.name]!)
  // dbgate's own bucket refuses to write such a key; any other S3 client can.
  const s3client = new S3Client({endpoint: s3.endpoint, forcePathStyle: true, region: 'us-east-1', credentials: {accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER'}})
  await s3client.send(new PutObjectCommand({Bucket: s3.bucketName, Key: `audit/${day}/back\\slash.jsonl.gz`, Body: good}))
  s3client.destroy()
}, 120_000)
afterEach(() => {
  vi.restoreAllMocks()
})
afterAll(async () => {
  process.env = savedEnv
  await tunnel?.close()
  await s3?.dispose()
  await removeTempDirs()
})

/** The stderr line naming one planted object: its key escaped as the terminal shows it. */
const shown = (k: string) => k.replace(/\x1b/g, '\\x1b')

describe('unreadable objects beside good sessions', () => {
  it('sessions list lists every readable session, names each unreadable object on stderr and exits 1', async () => {
    const list = await captureCommand(() => SessionsList.run(['--config', config], {root}))
    expect(list.stdout.split('\n').filter(Boolean).map((l) => l.split('\t')[0]).sort()).toEqual(readable)
    for (const p of planted) {
      const line = list.stderr.split('\n').find((l) => l.startsWith(`unreadable: ${shown(p.key)}: `))
      expect(line, p.name).toMatch(p.problem)
    }
    expect(list.stderr).toContain(`${planted.length} objects under sessions/ could not be read as session logs`)
    // The key's escape reaches the terminal as text, never as a sequence that would clear it.
    expect(list.stderr).not.toContain('\x1b')
    expect(list.exitCode).toBe(1)

    // Read again through the cache: a half-read object was not kept as a good session.
    const again = await captureCommand(() => SessionsList.run(['--config', config, '--json'], {root}))
    expect(again.exitCode).toBe(1)
    expect(again.result.sessions.map((s) => s.sessionId).sort()).toEqual(readable)
    expect(again.result.unreadable.map((u) => u.key).sort()).toEqual(planted.map((p) => p.key).sort())
    const json = JSON.parse(again.stdout) as {sessions: unknown[]; unreadable: {key: string; problem: string}[]}
    expect(json.sessions).toHaveLength(4)
    expect(json.unreadable.find((u) => u.key.endsWith('cut-short.jsonl.gz'))!.problem).toMatch(/gzip cut short/)
  })

  it('sessions search finds statements in the readable sessions and names what it could not search', async () => {
    const search = await captureCommand(() => SessionsSearch.run(['from', '--config', config], {root}))
    expect(search.stdout).toMatch(/^good-1\t2\t.*select \* from users$/m)
    expect(search.stdout).toMatch(/^good-2\t2\t.*select \* from orders$/m)
    expect(search.stderr).toContain(`unreadable: ${day}/not-gzip.jsonl.gz: not gzip`)
    expect(search.exitCode).toBe(1)
  })

  it('sessions export writes every readable session and names what it left out', async () => {
    const file = join(await tempDir('dbgate-export-'), 'evidence.jsonl')
    const exported = await captureCommand(() => SessionsExport.run(['--config', config, '-o', file], {root}))
    expect(exported.exitCode).toBe(1)
    const sessions = new Set((await readFile(file, 'utf8')).split('\n').filter(Boolean).map((l) => /"session":"([^"]+)"/.exec(l)?.[1]))
    expect([...sessions].filter(Boolean).sort()).toEqual(readable)
    expect(exported.stderr).toContain('Exported 4 sessions')
    expect(exported.stderr).toContain(`unreadable: ${day}/empty.jsonl.gz: empty object (0 bytes)`)
  })

  it('sessions verify gives each session its verdict and fails each unreadable object as OBJECT_UNREADABLE', async () => {
    const verify = await captureCommand(() => SessionsVerify.run(['--config', config], {root}))
    expect(verify.exitCode).toBe(1)
    expect(verify.stdout).toMatch(/OK .* good-1 ended/)
    expect(verify.stdout).toMatch(/OK .* good-2 ended/)
    expect(verify.stdout).toMatch(/FAIL\s+mid-bad ended, 5 lines.*\n\s+line 3 MALFORMED_LINE: not a valid v1 event/)
    for (const p of planted) {
      const at = verify.stdout.indexOf(`(${shown(p.key)})`)
      expect(at, p.name).toBeGreaterThan(0)
      const [head, detail] = verify.stdout.slice(verify.stdout.lastIndexOf('\n', at) + 1).split('\n')
      expect(head).toMatch(/FAIL/)
      expect(detail).toMatch(/OBJECT_UNREADABLE: cannot be read as a session log: /)
      expect(detail).toMatch(p.problem)
    }
    expect(verify.result.sessions.filter((s) => s.ok).map((s) => s.sessionId).sort()).toEqual(['good-1', 'good-2', viaTunnel].sort())

    // Named by id, an unreadable object is a FAIL too, not "no such session".
    const one = await captureCommand(() => SessionsVerify.run(['not-json', '--config', config], {root}))
    expect(one.exitCode).toBe(1)
    expect(one.stdout).toMatch(new RegExp(`FAIL .*\\(${day}/not-json\\.jsonl\\.gz\\)\\n\\s+line 0 OBJECT_UNREADABLE: .*no line is a dbgate event`))


    // Shown by id, it is named as there and unreadable (not "no such session"), its key escaped.
    const show = await captureCommand(() => SessionsShow.run(['<img', '--config', config], {root}).catch((err: Error) => err))
    expect(show.result).toBeInstanceOf(Error)
    expect((show.result as Error).message).toBe(`session object ${shown(planted.at(-1)!.key)} cannot be read as a session log: not gzip (4 bytes that do not start with the gzip header)`)
    expect(show.stderr).not.toContain('\x1b')
  })

  it('dbgate report is written from the readable sessions, with the unreadable objects as a gap and a control exception', async () => {
    const out = await tempDir('dbgate-report-out-')
    const r = await captureCommand(() => ReportCommand.run(['--config', config, '--since', '2026-03-01', '--out', out, '--framework', 'fedramp'], {root}))
    expect(r.stdout).toContain('3 of 4 logs verified')
    expect(r.stdout).toContain(`${planted.length} unreadable session objects`)
    expect(r.stdout).toContain(`gap: ${planted.length} object(s) under sessions/ cannot be read as session logs`)
    expect(r.stdout).not.toContain('\x1b[2J')

    const report = JSON.parse(await readFile(join(out, 'report.json'), 'utf8')) as Report
    expect(report.sessions.map((s) => s.sessionId).sort()).toEqual(readable)
    expect(report.summary.unreadableObjects).toBe(planted.length)
    expect(report.sources.unreadableObjects.map((u) => u.key).sort()).toEqual(planted.map((p) => p.key).sort())
    const gap = report.gaps.find((g) => g.kind === 'unreadable-objects')!
    expect(gap.objects!.map((o) => o.key).sort()).toEqual(planted.map((p) => p.key).sort())
    const au9 = report.controls.find((c) => c.id === 'AU-9')!
    expect(au9.status).toBe('exceptions')
    expect(au9.figures).toContainEqual({label: 'unreadable session objects', value: planted.length})
    expect(au9.exceptions).toContainEqual(expect.stringMatching(/^object sessions\/notes\.txt cannot be read as a session log: not a session log name/))
    expect(report.controls.find((c) => c.id === 'AU-12')!.status).toBe('exceptions')

    const html = await readFile(join(out, 'report.html'), 'utf8')
    expect(html).toContain('data-gap="unreadable-objects"')
    expect(html).toContain('&lt;img src=x onerror=alert(1)&gt;|*\\x1b[2J.jsonl.gz')
    expect(html).not.toContain('<img src=x')
    expect(html).not.toContain('\x1b')
    const md = await readFile(join(out, 'report.md'), 'utf8')
    expect(md).toContain('**unreadable-objects**')
    expect(md).toContain(`\`${day}/<img src=x onerror=alert(1)>\\|*\\x1b[2J.jsonl.gz\`: not gzip`)
    expect(md).toContain(`| unreadable session objects | ${planted.length} |`)
    expect(md).not.toContain('\x1b')
  })

  it('an unreadable object is never passed over for a readable log whose id starts with its name', async () => {
    // Made unreadable beside a readable log whose id its name begins: asked for by that name (the
    // whole id, or a prefix of both), verify and show never answer with the other log.
    const name = viaTunnel.slice(0, 8)
    const key = `${day}/${name}.jsonl.gz`
    await bucket.put(key, 'junk')
    try {
      const exact = await captureCommand(() => SessionsVerify.run([name, '--config', config], {root}))
      expect(exact.exitCode).toBe(1)
      expect(exact.stdout).toMatch(new RegExp(`FAIL .*\\(${day}/${name}\\.jsonl\\.gz\\)\\n\\s+line 0 OBJECT_UNREADABLE`))
      expect(exact.stdout).not.toContain(viaTunnel)
      const prefix = await captureCommand(() => SessionsVerify.run([name.slice(0, 4), '--config', config], {root}).catch((err: Error) => err))
      expect(prefix.result).toBeInstanceOf(Error)
      expect((prefix.result as Error).message).toMatch(new RegExp(`matches 2 sessions and objects: ${viaTunnel}, unreadable object ${day}/${name}\\.jsonl\\.gz`))
      const show = await captureCommand(() => SessionsShow.run([name, '--config', config], {root}).catch((err: Error) => err))
      expect((show.result as Error).message).toMatch(/cannot be read as a session log: not gzip/)
    } finally {
      await bucket.delete(key)
    }
  })
})
