import {mkdir, rm, writeFile} from 'node:fs/promises'
import {createServer, type Server} from 'node:http'
import type {AddressInfo} from 'node:net'
import path from 'node:path'
import {afterAll, afterEach, beforeAll, describe, expect, it, vi} from 'vitest'
import {readFile} from 'node:fs/promises'
import ApprovalsList from '../../src/commands/approvals/list.js'
import ApprovalsShow from '../../src/commands/approvals/show.js'
import Approve from '../../src/commands/approve.js'
import Deny from '../../src/commands/deny.js'
import {buildTunnelHooks} from '../../src/pipeline/index.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {people, tempBucketUrl, watchNotices, type People} from './helpers.js'
import {waitFor} from '../helpers/wait.js'
import {FileBucket} from '../../src/bucket/file.js'

/** The scriptable forms, run in-process as oclif runs them, against a live tunnel and a real IdP. */
describe('dbgate approvals list / approve / deny', () => {
  let p: People
  let db: UpstreamInfo
  let t: PipelineTunnel
  let configFile: string
  let hook: Server
  const posts: string[] = []
  const saved = {...process.env}
  let stdout = ''
  let bucketUrl: string

  function as(user: string) {
    for (const k of ['DBGATE_TOKEN', 'DBGATE_CLIENT_ID', 'DBGATE_CLIENT_SECRET']) delete process.env[k]
    Object.assign(process.env, p.env(user), {DBGATE_CONFIG: configFile})
    stdout = ''
    vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => void (stdout += `${args.join(' ')}\n`))
    vi.spyOn(console, 'error').mockImplementation(() => undefined)
    vi.spyOn(process.stdout, 'write').mockImplementation(() => true)
    vi.spyOn(process.stderr, 'write').mockImplementation(() => true)
  }
  afterEach(() => {
    vi.restoreAllMocks()
    process.env = {...saved}
  })

  beforeAll(async () => {
    p = await people()
    db = await createTestDatabase()
    hook = createServer((req, res) => {
      let body = ''
      req.on('data', (d) => (body += d))
      req.on('end', () => {
        posts.push(body)
        res.end('ok')
      })
    })
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r))
    const target = ['allow: [engineering]', 'reviewers: [dba]', 'approvals:', `  webhook: http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook`].join('\n')
    bucketUrl = tempBucketUrl()
    for (const u of ['alice', 'bob', 'carol']) await p.login(u)
    t = await openPipelineTunnel(db, target, {
      top: `bucket: ${bucketUrl}`,
      identity: {issuer: p.f.dev.issuer, clientId: p.f.dev.cliClientId, env: p.env('alice')},
      hooks: (ctx) => buildTunnelHooks({...ctx, approvalPollMs: 100}),
    })
    configFile = path.join(p.f.dir, 'dbgate.yaml')
    const yaml = [
      `identity:\n  issuer: ${p.f.dev.issuer}\n  clientId: ${p.f.dev.cliClientId}`,
      `bucket: ${bucketUrl}`,
      'targets:',
      '  app:',
      `    host: ${db.host}`,
      `    port: ${db.port}`,
      `    database: ${db.database}`,
      `    user: ${db.user}`,
      ...target.split('\n').map((l) => `    ${l}`),
      '',
    ].join('\n')
    await writeFile(configFile, yaml)
  })
  afterAll(async () => {
    await t?.close()
    await new Promise((r) => hook?.close(r))
    await p?.close()
  })

  it('lists a waiting request for a reviewer, approves it by id, and notifies the webhook', async () => {
    const c = await t.client()
    const w = watchNotices(c)
    const held = c.query('create table from_cli (id int)')
    const id = await w.approvalId()

    as('bob')
    const listed = (await ApprovalsList.run(['--json'])) as {id: string; requester: {email: string}; sealKey?: string; state: string}[]
    expect(listed.map((r) => r.id)).toEqual([id])
    expect(listed[0]).toMatchObject({requester: {email: 'alice@example.com'}, state: 'pending'})
    expect(listed[0]!.sealKey).toBeUndefined()

    as('alice')
    expect(await ApprovalsList.run(['--json'])).toEqual([])

    as('bob')
    await expect(Approve.run([id, '--reason', 'ticket OPS-42', '--json'])).resolves.toEqual({id, action: 'approve', reviewer: 'bob@example.com'})
    await held
    expect(await withClient(db.url, async (x) => (await x.query("select to_regclass('from_cli') as t")).rows[0].t)).toBe('from_cli')
    await expect(Approve.run([id])).rejects.toMatchObject({code: 'APPROVAL_ALREADY_DECIDED', message: expect.stringMatching(/bob@example.com approved it .*\(ticket OPS-42\)/), oclif: {exit: 1}})
    // The common case is a quicker colleague: the next step says there is nothing to do, calmly.
    await expect(Approve.run([id])).rejects.toMatchObject({suggestions: [expect.stringMatching(/^Nothing more to do\./)]})

    await waitFor(() => posts.length >= 2, 'the webhook has received two posts')
    const texts = posts.map((b) => (JSON.parse(b) as {text: string}).text)
    expect(texts[0]).toMatch(new RegExp(`alice@example.com asks to run a ddl statement on app .*create table from_cli.*Approval ${id}`))
    expect(texts[1]).toMatch(new RegExp(`bob@example.com approved ${id} \\(alice@example.com on app\\): ticket OPS-42`))
  })

  it('shows a request in full with its digest, and decides by digest only the request that was shown', async () => {
    const c = await t.client()
    const w = watchNotices(c)
    const sql = `create table shown_in_full (id int, note text default '${'a long default value that the list cuts '.repeat(3)}')\n  -- reviewed line two`
    const held = c.query(sql, []).catch((e: Error) => e)
    const id = await w.approvalId()

    as('bob')
    const json = (await ApprovalsShow.run([id, '--json'])) as {id: string; sql: string; digest: string; state: string}
    expect(json).toMatchObject({id, sql, state: 'pending'})
    expect(json.digest).toMatch(/^[0-9a-f]{64}$/)
    as('bob')
    await ApprovalsShow.run([id])
    // The whole text with its line break, never cut as the list's column is.
    expect(stdout).toContain(sql)
    expect(stdout).toContain(`digest ${json.digest}`)
    expect(stdout).toContain(`dbgate approve ${id} --digest ${json.digest}`)

    // Someone who writes the bucket changes the request after it was shown: the decision is refused.
    const file = path.join(new URL(bucketUrl).pathname, 'approvals', 'requests', `${id}.json`)
    const genuine = await readFile(file, 'utf8')
    await writeFile(file, JSON.stringify({...JSON.parse(genuine), sql: 'create table something_else (id int)'}))
    await expect(Approve.run([id, '--digest', json.digest])).rejects.toMatchObject({code: 'APPROVAL_UNTRUSTED_REQUEST', message: /changed in the bucket since/})
    await expect(Deny.run([id, '--reason', 'no', '--digest', json.digest])).rejects.toMatchObject({code: 'APPROVAL_UNTRUSTED_REQUEST'})
    await expect(Approve.run([id, '--digest', 'not-a-digest'])).rejects.toMatchObject({oclif: {exit: 2}})
    await writeFile(file, genuine)

    as('carol')
    await expect(ApprovalsShow.run([id])).rejects.toMatchObject({code: 'APPROVAL_NOT_FOUND'})
    as('alice')
    await expect(ApprovalsShow.run([id, '--json'])).resolves.toMatchObject({id, digest: json.digest})

    as('bob')
    await expect(Approve.run([id, '--digest', json.digest.toUpperCase(), '--json'])).resolves.toEqual({id, action: 'approve', reviewer: 'bob@example.com'})
    await held
    expect(await withClient(db.url, async (x) => (await x.query("select to_regclass('shown_in_full') as t")).rows[0].t)).toBe('shown_in_full')
  })

  it('denies with a reason the client sees, and insists on one', async () => {
    const c = await t.client()
    const w = watchNotices(c)
    const held = c.query('create table denied_from_cli (id int)').catch((e: Error) => e)
    const id = await w.approvalId()
    as('bob')
    await expect(Deny.run([id])).rejects.toMatchObject({oclif: {exit: 2}})
    await expect(Deny.run([id, '--reason', 'use the migration pipeline'])).resolves.toMatchObject({id, action: 'deny'})
    expect(stdout).toMatch(new RegExp(`Denied ${id} \\(alice@example.com on app\\)`))
    expect(await held).toMatchObject({message: `dbgate: approval ${id} denied by bob@example.com: use the migration pipeline`})
  })

  it('refuses people who may not decide, with exit 4', async () => {
    const c = await t.client()
    const w = watchNotices(c)
    const held = c.query('create table nobody (id int)').catch((e: Error) => e)
    const id = await w.approvalId()
    as('carol')
    await expect(Approve.run([id])).rejects.toMatchObject({code: 'APPROVAL_NOT_A_REVIEWER', oclif: {exit: 4}})
    as('alice')
    await expect(Approve.run([id])).rejects.toMatchObject({code: 'APPROVAL_SELF', oclif: {exit: 4}})
    as('bob')
    await expect(Approve.run([])).rejects.toMatchObject({code: 'APPROVAL_BAD_INPUT', oclif: {exit: 2}})
    await expect(Approve.run([id, '--window', '30m'])).rejects.toMatchObject({code: 'APPROVAL_BAD_INPUT', message: /does not allow windows/})
    await Deny.run([id, '--reason', 'cleanup'])
    await held
  })

  it('tells someone who reviews nothing that they are not a reviewer, and where their own requests are', async () => {
    const c = await t.client()
    const w = watchNotices(c)
    const held = c.query('create table waiting_for_bob (id int)').catch((e: Error) => e)
    const id = await w.approvalId()
    as('alice')
    const said: string[] = []
    vi.mocked(console.error).mockImplementation((...args: unknown[]) => void said.push(args.join(' ')))
    expect(await ApprovalsList.run(['--json'])).toEqual([])
    await ApprovalsList.run([])
    const note = said.join('\n')
    expect(note).toMatch(/alice@example.com \(groups: engineering\) is not in the reviewer groups of any target \(app: dba\)/)
    expect(note).toContain(`Your own pending request (${id} on app) waits for those reviewers; \`dbgate approvals list --mine\` shows them.`)
    const mine = (await ApprovalsList.run(['--mine', '--json'])) as {id: string; state: string}[]
    expect(mine.map((r) => [r.id, r.state])).toContainEqual([id, 'pending'])
    // The interactive screen would be empty: it says so instead of opening.
    await expect(Approve.run([])).rejects.toMatchObject({code: 'APPROVAL_NOT_A_REVIEWER', oclif: {exit: 4}})
    as('bob')
    await Deny.run([id, '--reason', 'cleanup'])
    await held
  })

  it('names a record it leaves out by a key anyone who writes the bucket chose, with nothing in it that acts on the terminal', async () => {
    // Keys under approvals/requests/ are listed and read before anything checks their names.
    const names = ['\x1b]52;c;cm0gLXJmIH4=\x07', '\x1b[2J\x1b[Hall clear', 'apr-\u202eabcd', 'x\u009b31m', 'a\rb\bc']
    const bucket = new FileBucket(new URL(bucketUrl).pathname)
    for (const n of names) await bucket.put(`approvals/requests/${n}.json`, '{"v":1}', {})
    try {
      as('bob')
      const said: string[] = []
      vi.mocked(console.error).mockImplementation((...args: unknown[]) => void said.push(args.join(' ')))
      await ApprovalsList.run([])
      await ApprovalsList.run(['--all'])
      const warnings = said.filter((l) => l.includes('left out'))
      expect(warnings.length).toBeGreaterThanOrEqual(names.length)
      for (const w of warnings) expect(w).not.toMatch(/[\p{Cc}\p{Cf}]/u)
      expect(said.join('\n')).toContain('\\x1b]52;c;')
      expect(said.join('\n')).toContain('apr-\\u202eabcd')
    } finally {
      await rm(new URL(`${bucketUrl}/approvals/requests`).pathname, {recursive: true, force: true})
      await mkdir(new URL(`${bucketUrl}/approvals/requests`).pathname, {recursive: true})
    }
  })
})
