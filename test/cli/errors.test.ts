/**
 * How every command ends when something is wrong, through the built binary: one format, unwrapped,
 * exit codes from one table, unknown commands answered in the words people type.
 */
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {run} from '../helpers/run.js'

const BIN = path.resolve('bin/run.js')
let dir: string
const dbgate = (...args: string[]) => run('node', [BIN, ...args], {cwd: dir, env: {XDG_CACHE_HOME: dir, XDG_CONFIG_HOME: dir, XDG_DATA_HOME: dir, XDG_STATE_HOME: dir, DBGATE_CONFIG: undefined, DBGATE_BUCKET: undefined}})

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'dbgate-errors-'))
})
afterAll(async () => {
  await rm(dir, {recursive: true, force: true})
})

describe('unknown commands and help', () => {
  it('suggests the closest command in the words typed, without prompting, and exits 2', async () => {
    const r = await dbgate('conect', 'shop')
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('"conect shop" is not a dbgate command.')
    expect(r.stderr).toContain('Did you mean `dbgate connect shop`?')
    expect(r.stderr).not.toContain('conect:shop')
    const sub = await dbgate('sessions', 'lst', '--since', '7d')
    expect(sub.code).toBe(2)
    expect(sub.stderr).toContain('Did you mean `dbgate sessions list --since 7d`?')
  })

  it('answers `dbgate help <command>` like `dbgate <command> --help`', async () => {
    const viaHelp = await dbgate('help', 'connect')
    const viaFlag = await dbgate('connect', '--help')
    expect(viaHelp.code).toBe(0)
    expect(viaHelp.stdout).toContain('$ dbgate connect TARGET')
    expect(viaHelp.stdout).toBe(viaFlag.stdout)
    const nested = await dbgate('help', 'sessions', 'replay')
    expect(nested.stdout).toContain('$ dbgate sessions replay SESSION')
  })

  it('mentions approve and deny where approvals are listed', async () => {
    const r = await dbgate('approvals', '--help')
    expect(r.stdout).toMatch(/dbgate approve/)
    expect(r.stdout).toMatch(/dbgate deny/)
  })
})

describe('error output', () => {
  it('never wraps a long path or command across lines, so it can be copied whole', async () => {
    const long = path.join(dir, 'a-directory-with-a-rather-long-name', 'and-another-one-below-it', 'keys', '9f1c0a2b3c4d5e6f7a8b9c0d1e2f3a4b.json')
    const r = await dbgate('sessions', 'verify', '--file', path.join(dir, 'x.jsonl'), '--key', long)
    expect(r.code).toBe(1)
    expect(r.stderr.split('\n')[0]).toBe(`Error: cannot read key file ${long}: no such file; --key takes a keys/<key-id>.json file copied from the bucket`)
    expect(r.stderr).not.toContain('›')
  })

  it('exits 2 for a bad flag value, naming the flag', async () => {
    const since = await dbgate('sessions', 'list', '--since', 'bogus', '--bucket', `file://${dir}`)
    expect(since.code).toBe(2)
    expect(since.stderr).toMatch(/--since/)
    const port = await dbgate('connect', 'x', '--port', 'abc')
    expect(port.code).toBe(2)
    expect(port.stderr).toMatch(/^Error: --port: Expected an integer but received: abc/m)
    expect(port.stderr).toContain('Run `dbgate connect --help`')
    const unknown = await dbgate('sessions', 'list', '--nope')
    expect(unknown.code).toBe(2)
  })

  it('refuses unknown values of enumerated flags, listing the valid ones', async () => {
    const cls = await dbgate('sessions', 'search', '--class', 'select', '--bucket', `file://${dir}`)
    expect(cls.code).toBe(2)
    expect(cls.stderr).toContain('--class: "select" is not one of read, write, ddl, privilege, admin, transaction, session, opaque, unknown; select is a kind of statement, of class read')
    const decision = await dbgate('sessions', 'search', '--decision', 'nope', '--bucket', `file://${dir}`)
    expect(decision.code).toBe(2)
    expect(decision.stderr).toContain('--decision: "nope" is not one of allow, deny, approved, approval_denied, approval_timeout, approval_withdrawn')
    const help = await dbgate('sessions', 'search', '--help')
    expect(help.stdout.replace(/\s+/g, ' ')).toContain('One of: read, write, ddl, privilege, admin, transaction, session, opaque, unknown.')
    expect(help.stdout).not.toMatch(/select, insert, update, delete/)
    const ok = await dbgate('sessions', 'search', '--class', 'read', '--decision', 'approved', '--bucket', `file://${dir}`)
    expect(ok.code).toBe(0)
  })

  it('wraps command descriptions only where the terminal ends, not at hard line breaks', async () => {
    for (const args of [['connect', '--help'], ['masking', 'scan', '--help']]) {
      const r = await dbgate(...args)
      const description = r.stdout.split('DESCRIPTION\n')[1]!.split('\nEXAMPLES')[0]!
      // Every paragraph's lines but its last are filled to near the width (80 columns off a terminal).
      for (const paragraph of description.split('\n\n')) {
        const lines = paragraph.split('\n').filter(Boolean)
        for (const line of lines.slice(0, -1)) expect({args, line, long: line.length > 60}).toEqual({args, line, long: true})
      }
    }
  })
})
