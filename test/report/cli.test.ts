/** `dbgate report` as an auditor runs it: the installed binary, a bucket URL, flags, files out. */
import {readdir, readFile, stat, writeFile} from 'node:fs/promises'
import {join, resolve} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {FileBucket} from '../../src/bucket/index.js'
import type {Report} from '../../src/report/model.js'
import {removeTempDirs, tempDir} from '../audit/helpers.js'
import {isolatedEnv} from '../helpers/open.js'
import {run} from '../helpers/run.js'
import {october, recordFixture} from './fixture.js'

const BIN = resolve('bin/run.js')
let bucketDir: string
const env = isolatedEnv()

beforeAll(async () => {
  bucketDir = await tempDir('dbgate-report-bucket-')
  await recordFixture(october(), new FileBucket(bucketDir), tempDir)
})
afterAll(removeTempDirs)

const dbgate = (...args: string[]) => run(process.execPath, [BIN, ...args], {env, timeoutMs: 60_000})

describe('dbgate report', () => {
  it('writes the three files for a period and a target, and says what it found', async () => {
    const out = join(await tempDir('dbgate-report-out-'), 'evidence', 'october')
    const r = await dbgate('report', '--bucket', `file://${bucketDir}`, '--since', '2026-10-01', '--until', '2026-10-31', '--target', 'staging', '--framework', 'soc2', '--out', out)
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect((await readdir(out)).sort()).toEqual(['report.html', 'report.json', 'report.md'])
    const report = JSON.parse(await readFile(join(out, 'report.json'), 'utf8')) as Report
    // --until with a bare date covers that whole day.
    expect(report.period).toEqual({since: '2026-10-01T00:00:00.000Z', until: '2026-10-31T23:59:59.999Z', days: 31})
    expect(report.scope).toMatchObject({target: 'staging', targets: ['staging'], frameworks: ['soc2']})
    expect(report.sessions.map((s) => s.sessionId).sort()).toEqual(['ada-grant', 'root-local'])
    expect(r.stdout).toContain('2 sessions, 2 identities, 3 statements, 1 denied, 0 approvals granted, 0 values masked')
    expect(r.stdout).toContain('gap: 29 of 31 days since recording began have no session logs')
    expect(r.stdout).toContain(join(out, 'report.html'))
    expect((await stat(join(out, 'report.json'))).mode & 0o077).toBe(0)
  })

  it('prints the summary and gaps as JSON with --json', async () => {
    const out = await tempDir('dbgate-report-out-')
    const r = await dbgate('report', '--bucket', `file://${bucketDir}`, '--since', '2026-10-01', '--until', '2026-10-31', '--out', out, '--json')
    expect(r.code).toBe(0)
    const json = JSON.parse(r.stdout) as {summary: Report['summary']; gaps: Report['gaps']; files: {html: string}}
    expect(json.summary).toMatchObject({sessions: 40, logsFailingVerification: 1})
    expect(json.gaps.map((g) => g.kind)).toContain('verification-failed')
    expect(json.files.html).toBe(join(out, 'report.html'))
  })

  it('trusts only the keys given with --key', async () => {
    const out = await tempDir('dbgate-report-out-')
    const keys = join(bucketDir, 'keys')
    let adaKey = ''
    for (const f of await readdir(keys)) if ((await readFile(join(keys, f), 'utf8')).includes('"u-ada"')) adaKey = join(keys, f)
    const r = await dbgate('report', '--bucket', `file://${bucketDir}`, '--since', '2026-10-01', '--until', '2026-10-31', '--out', out, '--key', adaKey)
    expect(r.code).toBe(0)
    const report = JSON.parse(await readFile(join(out, 'report.json'), 'utf8')) as Report
    expect(report.sources.keys).toHaveLength(1)
    const failed = report.integrity.filter((i) => i.result === 'failed')
    expect(new Set(failed.map((i) => i.sessionId.replace(/-\d+$/, '')))).toEqual(new Set(['ci', 'root-local', 'ada-tampered']))
    expect(failed.find((i) => i.sessionId === 'root-local')!.problems.map((p) => p.code)).toContain('UNKNOWN_KEY')
  })

  it('says when a period holds no sessions, and still writes a report that says so', async () => {
    const out = await tempDir('dbgate-report-out-')
    const r = await dbgate('report', '--bucket', `file://${bucketDir}`, '--since', '2025-01-01', '--until', '2025-01-31', '--out', out)
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('gap: No session logs in')
    expect(await readFile(join(out, 'report.html'), 'utf8')).toContain('No session logs in')
  })

  it('refuses bad input with what is wrong and how to fix it', async () => {
    const bad = await dbgate('report', '--bucket', `file://${bucketDir}`, '--since', 'last month')
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain('--since: "last month" is not a duration; write a duration before now (30s, 15m, 2h, 1h30m, 1d, 2w or 1y) or a date like 2026-01-31')
    const framework = await dbgate('report', '--bucket', `file://${bucketDir}`, '--framework', 'hipaa')
    expect(framework.code).toBe(2)
    expect(framework.stderr).toMatch(/Expected --framework=hipaa to be one of: soc2, iso27001, fedramp/)
    const empty = await dbgate('report', '--bucket', `file://${await tempDir('dbgate-report-typo-')}/no-such-prefix`, '--out', await tempDir('dbgate-report-out-'))
    expect(empty.code).not.toBe(0)
    expect(empty.stderr.replace(/\s+/g, ' ')).toContain('holds no recordings at all (no sessions/, no keys/): check --bucket')
    const fileOut = join(await tempDir('dbgate-report-out-'), 'report.html')
    await writeFile(fileOut, '')
    const outIsFile = await dbgate('report', '--bucket', `file://${bucketDir}`, '--out', fileOut)
    expect(outIsFile.stderr.replace(/\s+/g, ' ')).toContain(`--out ${fileOut} is a file; give a directory`)
    const noKey = await dbgate('report', '--bucket', `file://${bucketDir}`, '--key', 'missing-key.json')
    expect(noKey.stderr.replace(/\s+/g, ' ')).toContain('cannot read key file missing-key.json: no such file; --key takes a keys/<key-id>.json file')
    const reversed = await dbgate('report', '--bucket', `file://${bucketDir}`, '--since', '2026-10-31', '--until', '2026-10-01')
    expect(reversed.code).not.toBe(0)
    expect(reversed.stderr.replace(/\s+/g, ' ')).toContain('the period is empty: --since (2026-10-31T00:00:00.000Z) is after --until')
  })

  it('prints gaps that name what the bucket holds with nothing in them that acts on the terminal', async () => {
    const dir = await tempDir('dbgate-report-hostile-')
    await recordFixture(october(), new FileBucket(dir), tempDir)
    // keys/ is as writable as the rest of the bucket: a key file's name is its writer's choice.
    for (const name of ['\x1b]52;c;cm0gLXJmIH4=\x07', '\x1b[2J\x1b[H', 'k\u202eyek', 'x\u009b31m']) await writeFile(join(dir, 'keys', `${name}.json`), 'not a key')
    const out = await tempDir('dbgate-report-out-')
    const r = await dbgate('report', '--bucket', `file://${dir}`, '--since', '2026-10-01', '--until', '2026-10-31', '--out', out)
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('gap: published key')
    expect(r.stdout).toContain('\\x1b]52;c;')
    expect(r.stdout.replace(/\n/g, '')).not.toMatch(/[\p{Cc}\p{Cf}]/u)
  })
})
