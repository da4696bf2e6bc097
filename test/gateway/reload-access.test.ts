import {readFileSync} from 'node:fs'
import {mkdtemp} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {Client} from '@modelcontextprotocol/sdk/client/index.js'
import type {CallToolResult} from '@modelcontextprotocol/sdk/types.js'
import pg from 'pg'
import {Agent} from 'undici'
import {afterAll, afterEach, beforeAll, describe, expect, it} from 'vitest'
import {decide, type Reviewer} from '../../src/approvals/review.js'
import {readOutcome} from '../../src/approvals/store.js'
import {openBucket, type Bucket} from '../../src/bucket/index.js'
import type {LoadedConfig} from '../../src/config/types.js'
import {startGateway, type RunningGateway} from '../../src/gateway/gateway.js'
import {verifyToken} from '../../src/identity/verify.js'
import {watchNotices} from '../approvals/helpers.js'
import {fixture, mint, type Fixture} from '../identity/helpers.js'
import {isolatedEnv, targetConfigText} from '../helpers/open.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {waitFor} from '../helpers/wait.js'
import {textOf} from '../mcp/helpers.js'
import {closeGatewayTest, gatewayConfig, makePki, remoteAgent, type TestPki, throughDispatcher} from './helpers.js'

/**
 * A reload (SIGHUP) is how the gateway's administrators take access away: a group dropped from a
 * target's `allow`, a target removed after an incident, a rule added. Open sessions keep neither a
 * policy nor access the configuration no longer gives: a session of someone the reloaded
 * configuration would refuse, or on a target whose policy changed, ends (after its statement in
 * flight), a statement it holds for a
 * reviewer is withdrawn, and a remote MCP session of theirs closes its database sessions at once,
 * not at the agent's next request.
 */
describe('dbgate gateway: a reload that takes access away ends the sessions it took it from', () => {
  let f: Fixture
  let pki: TestPki
  let db: UpstreamInfo
  let dir: string
  let env: NodeJS.ProcessEnv
  let gw: RunningGateway
  let bucket: Bucket
  let next: LoadedConfig
  let dispatcher: Agent
  const open: pg.Client[] = []
  const agents: Client[] = []

  const configWith = (targets: {name: string; allow?: string; extra?: string[]}[]) =>
    gatewayConfig({
      pki,
      dir,
      issuer: f.dev.issuer,
      clientId: f.dev.cliClientId,
      env,
      server: ['mcp: {publicUrl: https://gw.test:8443}'],
      targets: targets.flatMap((t) => targetConfigText(t.name, db, [...(t.allow !== undefined ? [`allow: ${t.allow}`] : []), 'reviewers: [dba]', ...(t.extra ?? [])].join('\n'))),
    })
  const everyone = () => [
    {name: 'app', allow: '[engineering, dba]'},
    {name: 'ops', allow: '[engineering, dba]'},
  ]

  beforeAll(async () => {
    ;[f, pki, db] = await Promise.all([fixture(), makePki(), createTestDatabase('gwreloadaccess')])
    dir = await mkdtemp(path.join(tmpdir(), 'dbgate-gwreloadaccess-'))
    env = {...isolatedEnv(), TEST_APP_PASSWORD: db.password}
    const loaded = configWith(everyone())
    next = loaded
    bucket = openBucket(loaded.config.bucket)
    gw = await startGateway({loaded, env, reloadConfig: async () => next})
    await gw.whenReady()
    dispatcher = new Agent({connect: {ca: readFileSync(pki.ca, 'utf8')}})
  })
  afterEach(async () => {
    await Promise.all([...open.splice(0).map((c) => c.end().catch(() => {})), ...agents.splice(0).map((c) => c.close().catch(() => {}))])
    next = configWith(everyone())
    await gw.reload()
  })
  afterAll(async () => {
    await dispatcher?.close()
    await closeGatewayTest(gw, f, [dir, pki?.dir])
  })

  const people = {
    alice: {sub: 'alice', email: 'alice@example.com', groups: ['engineering']},
    dave: {sub: 'dave', email: 'dave@example.com', groups: ['dba']},
  }
  const token = (who: keyof typeof people) => mint(f.signingKey, {iss: f.dev.issuer, aud: f.dev.cliClientId, ...people[who], exp: Math.floor(Date.now() / 1000) + 600})
  async function connect(who: keyof typeof people, database: string): Promise<{c: pg.Client; ended: () => Error | undefined}> {
    const c = new pg.Client({host: '127.0.0.1', port: gw.address.port, database, user: people[who].email, password: await token(who), ssl: {ca: readFileSync(pki.ca, 'utf8'), servername: 'localhost'}})
    let error: Error | undefined
    c.on('error', (e) => (error ??= e))
    await c.connect()
    open.push(c)
    return {c, ended: () => error}
  }
  const reload = async (targets: {name: string; allow?: string; extra?: string[]}[]) => {
    next = configWith(targets)
    await gw.reload()
  }
  const answers = (c: pg.Client) => c.query('select 1 as one').then((r) => r.rows[0].one as number, (e: Error) => e.message)
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
  const tableExists = (name: string) => withClient(db.url, async (k) => (await k.query<{ok: boolean}>('select to_regclass($1) is not null as ok', [name])).rows[0]!.ok)

  const takeAway: [string, () => {name: string; allow?: string; extra?: string[]}[], RegExp][] = [
    ['its allow no longer lists her group', () => [{name: 'app', allow: '[dba]'}, {name: 'ops', allow: '[engineering, dba]'}], /alice@example\.com may no longer use target "app"/],
    ['its allow names her group in another case', () => [{name: 'app', allow: '[Engineering, dba]'}, {name: 'ops', allow: '[engineering, dba]'}], /alice@example\.com may no longer use target "app"/],
    ['its allow is removed (a gateway lets nobody in then)', () => [{name: 'app'}, {name: 'ops', allow: '[engineering, dba]'}], /alice@example\.com may no longer use target "app"/],
    ['the target is removed', () => [{name: 'ops', allow: '[engineering, dba]'}], /the gateway no longer serves target "app"/],
  ]

  it.each(takeAway)('ends her PostgreSQL session when %s; her session on another target and others\' sessions go on', async (_label, targets, why) => {
    const mine = await connect('alice', 'app')
    const elsewhere = await connect('alice', 'ops')
    const daves = await connect('dave', 'ops')
    expect(await answers(mine.c)).toBe(1)
    await reload(targets())
    await waitFor(() => mine.ended() !== undefined, 'her session on app has ended', {timeoutMs: 10_000}).catch(() => {})
    expect(mine.ended()?.message).toMatch(why)
    expect(await answers(mine.c)).not.toBe(1)
    expect(await answers(elsewhere.c)).toBe(1)
    expect(await answers(daves.c)).toBe(1)
    // A sign-in after the reload is refused as the reloaded configuration says.
    await expect(connect('alice', 'app')).rejects.toThrow(/may not use target "app"|not a target this gateway serves/)
  }, 30_000)

  /** Bob of dba, deciding with a token issued now, as `dbgate approve` would. */
  const bob: Reviewer = {
    identity: {subject: 'bob', email: 'bob@example.com', groups: ['dba'], issuer: '', kind: 'human', tokenHash: '', expiresAt: new Date(Date.now() + 3_600_000)},
    async freshToken() {
      const t = await mint(f.signingKey, {iss: f.dev.issuer, aud: f.dev.cliClientId, sub: 'bob', email: 'bob@example.com', groups: ['dba'], exp: Math.floor(Date.now() / 1000) + 600})
      const {identity} = await verifyToken(f.config, t, {use: 'any'})
      return {identity, token: t}
    },
  }

  it.each(takeAway)('withdraws the statement she holds for a reviewer when %s, and an approval afterwards runs nothing', async (label, targets, why) => {
    const table = `held_${label.replace(/\W+/g, '_')}`
    const {c} = await connect('alice', 'app')
    const w = watchNotices(c)
    const held = c.query(`create table ${table} (id int)`).then(
      () => undefined,
      (e: Error) => e,
    )
    const id = await w.approvalId()
    await reload(targets())
    await sleep(1000)
    await decide({bucket, config: next.config, reviewer: bob}, {id, action: 'approve'}).catch(() => undefined)
    const error = await Promise.race([held, sleep(8000).then(() => new Error('still waiting for its verdict'))])
    expect(await tableExists(table)).toBe(false)
    expect(error?.message).toMatch(/withdrawn: the session is ending: this session ends/)
    expect(error?.message).toMatch(why)
    expect((await readOutcome(bucket, id))?.state).toBe('withdrawn')
  }, 30_000)

  const freeze = () => [{name: 'app', allow: '[engineering, dba]', extra: ['rules:', '  - id: freeze', '    match: {class: write}', '    action: deny']}, {name: 'ops', allow: '[engineering, dba]'}]

  // A rule added after an incident (writes frozen) must hold for the sessions open at the reload,
  // not only for the next ones: a session on a pipeline built from the old rules would go on writing.
  it('ends her session, after its statement in flight, when a reload changes her target\'s rules; her next session runs under them', async () => {
    await withClient(db.url, (k) => k.query('create table if not exists frozen_notes (id int)'))
    const mine = await connect('alice', 'app')
    const daves = await connect('dave', 'ops')
    await mine.c.query('insert into frozen_notes values (1)')
    const inFlight = mine.c.query('select pg_sleep(1.5), 7 as seven').then((r) => r.rows[0].seven as number, (e: Error) => e.message)
    await sleep(300)
    await reload(freeze())
    expect(await inFlight).toBe(7)
    await waitFor(() => mine.ended() !== undefined, 'her session on app has ended', {timeoutMs: 10_000}).catch(() => {})
    expect(mine.ended()?.message).toMatch(/this session ends: the policy of target "app" changed \(a reload\); connect again to work under the new one/)
    expect(await answers(mine.c)).not.toBe(1)
    // The other target's policy did not change: its sessions go on.
    expect(await answers(daves.c)).toBe(1)
    const again = await connect('alice', 'app')
    await expect(again.c.query('insert into frozen_notes values (2)')).rejects.toThrow(/freeze/)
    expect(await withClient(db.url, async (k) => (await k.query('select count(*)::int as n from frozen_notes')).rows[0].n)).toBe(1)
  }, 30_000)

  // Sign-ins under way when the reload lands: each either starts on the new rules or ends; none
  // goes on writing on a pipeline built from the old ones.
  it('lets no session signed in around a reload keep the rules it replaced', async () => {
    await withClient(db.url, (k) => k.query('create table if not exists frozen_notes (id int)'))
    const before = await withClient(db.url, async (k) => (await k.query('select count(*)::int as n from frozen_notes')).rows[0].n as number)
    // Spread out so that some are preparing their pipeline as the reload swaps the configuration in.
    const signingIn = Array.from({length: 16}, (_, i) => sleep(i * 15).then(() => connect('alice', 'app').catch(() => undefined)))
    await sleep(60)
    await reload(freeze())
    const sessions = (await Promise.all(signingIn)).filter((s) => s !== undefined)
    await sleep(1000)
    for (const s of sessions) {
      if (s.ended()) continue
      await s.c.query('insert into frozen_notes values (3)').catch(() => undefined)
    }
    expect(await withClient(db.url, async (k) => (await k.query('select count(*)::int as n from frozen_notes')).rows[0].n)).toBe(before)
  }, 30_000)

  it('keeps every session through a reload that changes nothing of its target (the same file again, another target\'s rules)', async () => {
    const mine = await connect('alice', 'app')
    await reload(everyone())
    await reload([{name: 'app', allow: '[engineering, dba]'}, {name: 'ops', allow: '[engineering, dba]', extra: ['rules:', '  - id: freeze', '    match: {class: write}', '    action: deny']}])
    await sleep(1000)
    expect(mine.ended()).toBeUndefined()
    expect(await answers(mine.c)).toBe(1)
  })

  const fetchWithCa = throughDispatcher(() => dispatcher)
  const backends = () => withClient(db.url, async (c) => Number((await c.query<{n: string}>("select count(*) as n from pg_stat_activity where datname = current_database() and application_name like 'dbgate/alice@example.com%'")).rows[0]!.n))

  it.each(takeAway)("closes her remote MCP session's database sessions at once when %s, and tells her agent why", async (_label, targets, why) => {
    const endpoint = `https://localhost:${gw.api!.port}/mcp/app`
    const bearer = await token('alice')
    const {client, transport} = await remoteAgent(endpoint, bearer, {fetch: fetchWithCa, name: 'reload-agent', version: '1'})
    agents.push(client)
    const answer = (await client.callTool({name: 'query', arguments: {sql: 'select 41 as answer'}})) as CallToolResult
    expect(textOf(answer)).toContain('41')
    expect(await backends()).toBeGreaterThan(0)

    await reload(targets())
    // The agent sends nothing meanwhile: what its session held closes all the same.
    await waitFor(async () => (await backends()) === 0, "her MCP session's database sessions have closed", {timeoutMs: 10_000}).catch(() => {})
    expect(await backends()).toBe(0)

    // Restored: her next request on the old session is told it ended, and why.
    await reload(everyone())
    const res = await fetchWithCa(endpoint, {
      method: 'POST',
      headers: {authorization: `Bearer ${bearer}`, 'mcp-session-id': transport.sessionId!, 'mcp-protocol-version': '2025-06-18', 'content-type': 'application/json', accept: 'application/json, text/event-stream'},
      body: JSON.stringify({jsonrpc: '2.0', id: 9, method: 'tools/call', params: {name: 'query', arguments: {sql: 'select 42 as answer'}}}),
    })
    expect(res.status).toBe(404)
    const body = (await res.json()) as {error: {message: string}}
    expect(body.error.message).toMatch(/this MCP session has ended/)
    expect(body.error.message).toMatch(why)
  }, 30_000)
})
