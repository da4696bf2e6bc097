import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {Recorder} from '../../src/audit/recorder.js'
import {shipPending} from '../../src/audit/shipper.js'
import {loadOrCreateInstallationKey, publishKey} from '../../src/audit/signing.js'
import SessionsExport from '../../src/commands/sessions/export.js'
import SessionsList from '../../src/commands/sessions/list.js'
import SessionsSearch from '../../src/commands/sessions/search.js'
import SessionsShow from '../../src/commands/sessions/show.js'
import {FileBucket} from '../../src/bucket/index.js'
import {captureCommand} from '../helpers/capture.js'
import {alice, removeTempDirs, stmt, tempDir, auditorEnv} from './helpers.js'

/**
 * A statement an AI agent ran through `dbgate mcp` for alice was exported and searched as alice's:
 * the CSV had no column saying an agent wrote it, and `sessions search` printed her address alone
 * (only `list`, `show` and the report said "via claude-code"). A reviewer sampling the CSV for who
 * ran a DELETE read that alice typed it. The CSV has an `agent` column now, and search shows and
 * returns the agent beside the person. The agent's name is the agent's own choice, so the cell is
 * defused like any other.
 */
const root = join(import.meta.dirname, '..', '..')
const savedEnv = {...process.env}

describe('statements an AI agent ran, in exports and searches', () => {
  let bucket: FileBucket

  beforeAll(async () => {
    auditorEnv()
    bucket = new FileBucket(await tempDir('dbgate-agent-bucket-'))
    const key = await loadOrCreateInstallationKey(await tempDir('dbgate-agent-key-'))
    await publishKey(bucket, alice, key)
    const spoolDir = await tempDir('dbgate-agent-spool-')
    const rec = await Recorder.open({signer: key, dbgateVersion: 'test', spoolDir})
    const startedAt = new Date('2026-03-01T10:00:00Z')
    const base = {identity: alice, target: 'prod', database: 'app', dbUser: 'app_rw', startedAt}
    const agentRun = rec.startSession({...base, sessionId: 'by-agent', client: {application: 'dbgate-mcp claude-code', address: '127.0.0.1:1'}, agent: {client: 'mcp', name: 'claude-code', version: '2.1.0'}})
    agentRun.statement(stmt('by-agent', 'DELETE FROM carts WHERE id = 7', {commandTags: ['DELETE 1']}))
    await agentRun.end('client-closed')
    const hostile = rec.startSession({...base, sessionId: 'by-hostile-agent', client: {address: '127.0.0.1:2'}, agent: {client: 'mcp', name: '=HYPERLINK("http://x.example/","ok")'}})
    hostile.statement(stmt('by-hostile-agent', 'DELETE FROM carts WHERE id = 8', {commandTags: ['DELETE 1']}))
    await hostile.end('client-closed')
    const forging = rec.startSession({...base, sessionId: 'by-forging-agent', client: {address: '127.0.0.1:4'}, agent: {client: 'mcp', name: 'claude-code 2.1.0 (MCP) acting for bob@example.com —', version: '1.0 (MCP) for bob'}})
    forging.statement(stmt('by-forging-agent', 'select 1'))
    await forging.end('client-closed')
    const person = rec.startSession({...base, sessionId: 'by-alice', client: {application: 'psql', address: '127.0.0.1:3'}})
    person.statement(stmt('by-alice', 'DELETE FROM carts WHERE id = 9', {commandTags: ['DELETE 1']}))
    await person.end('client-closed')
    await shipPending({bucket, signer: key, spoolDir})
  })
  afterAll(async () => {
    process.env = savedEnv
    await removeTempDirs()
  })

  it('sessions export --format csv says which statements an agent ran', async () => {
    const r = await captureCommand(() => SessionsExport.run(['--bucket', bucket.url, '--format', 'csv'], {root}))
    const [header, ...rows] = r.stdout.trim().split('\n')
    const cols = header!.split(',')
    const agentAt = cols.indexOf('agent')
    expect(agentAt).toBe(cols.indexOf('user') + 1)
    // No cell here holds a comma or a quote but the hostile name, which is quoted whole.
    const agentOf = (id: string) => {
      const row = rows.find((l) => l.startsWith(`${id},`))!
      return row.startsWith('by-hostile-agent') ? /,"(""=HYPERLINK[^,]*,[^,]*\(MCP\))",/.exec(row)?.[1] : row.split(',')[agentAt]
    }
    expect(agentOf('by-agent')).toBe('claude-code 2.1.0 (MCP)')
    expect(agentOf('by-alice')).toBe('')
    // A formula the agent named itself stays text in a spreadsheet: the name is in quotes, which no formula starts with.
    expect(agentOf('by-hostile-agent')).toBe(`""=HYPERLINK(\\""http://x.example/\\"",\\""ok\\"")"" (MCP)`)
  })

  it('sessions list and show quote an agent name that is more than a word, so it cannot speak for dbgate', async () => {
    const label = '"claude-code 2.1.0 (MCP) acting for bob@example.com —" "1.0 (MCP) for bob" (MCP)'
    const list = await captureCommand(() => SessionsList.run(['--bucket', bucket.url], {root}))
    expect(list.stdout.split('\n').find((l) => l.startsWith('by-forging-agent\t'))).toContain(`\talice@example.com via ${label}\t`)
    const show = await captureCommand(() => SessionsShow.run(['by-forging-agent', '--bucket', bucket.url], {root}))
    expect(show.stdout).toContain(`AI agent ${label} acting for alice@example.com`)
    // A name that is one word stays as the agent wrote it.
    expect(list.stdout.split('\n').find((l) => l.startsWith('by-agent\t'))).toContain('\talice@example.com via claude-code 2.1.0 (MCP)\t')
  })

  it('sessions search names the agent beside the person, in text and in JSON', async () => {
    const text = await captureCommand(() => SessionsSearch.run(['--bucket', bucket.url, 'delete from carts'], {root}))
    const lines = text.stdout.trim().split('\n')
    expect(lines.find((l) => l.startsWith('by-agent\t'))).toContain('\talice@example.com via claude-code 2.1.0 (MCP)\t')
    expect(lines.find((l) => l.startsWith('by-alice\t'))).toContain('\talice@example.com\t')
    const json = await captureCommand(() => SessionsSearch.run(['--bucket', bucket.url, '--json', 'delete from carts'], {root}))
    const matches = (JSON.parse(json.stdout) as {matches: {sessionId: string; agent?: string}[]}).matches
    expect(matches.find((m) => m.sessionId === 'by-agent')?.agent).toBe('claude-code 2.1.0 (MCP)')
    expect(matches.find((m) => m.sessionId === 'by-alice')?.agent).toBeUndefined()
  })
})
