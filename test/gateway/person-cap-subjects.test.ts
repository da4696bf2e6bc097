import {readFileSync} from 'node:fs'
import {Client} from '@modelcontextprotocol/sdk/client/index.js'
import type {CallToolResult} from '@modelcontextprotocol/sdk/types.js'
import pg from 'pg'
import {Agent} from 'undici'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {mint} from '../identity/helpers.js'
import {textOf} from '../mcp/helpers.js'
import {waitFor} from '../helpers/wait.js'
import {remoteAgent, type RotatingIdpGateway, rotatingIdpGateway, throughDispatcher} from './helpers.js'

/**
 * server.maxSessionsPerPerson counts a person, not one of their subjects. One person holds several
 * at one IdP (Entra ID's `sub` is pairwise, one per client application: dbgate's CLI, the CI's
 * client, an agent platform's, all in identity.allowedClients; linked accounts that share a
 * mailbox), and each of their tokens proves the same verified mailbox. Counted by subject, a person
 * with three clients held three times the cap, and a stolen set of tokens took a target's whole
 * budget of database sessions (tunnel.maxUpstreamSessions) from everyone else.
 */
describe('dbgate gateway: server.maxSessionsPerPerson over the subjects of one person', () => {
  let f: RotatingIdpGateway
  let dispatcher: Agent
  const open: pg.Client[] = []
  const agents: Client[] = []
  const ends: (() => Promise<void>)[] = []

  beforeAll(async () => {
    f = await rotatingIdpGateway('gwcapsubjects', {server: ['maxSessionsPerPerson: 3', 'mcp: {publicUrl: "https://gw.test:8443", maxSessionsPerPerson: 2}'], target: 'allow: [engineering]\ntunnel: {maxUpstreamSessions: 8, upstreamQueueTimeout: 0s}'})
    dispatcher = new Agent({connect: {ca: readFileSync(f.pki.ca, 'utf8')}})
  })
  afterAll(async () => {
    await Promise.all(agents.map((c) => c.close().catch(() => {})))
    await Promise.all(open.map((c) => c.end().catch(() => {})))
    await dispatcher?.close()
    await f?.close()
  })

  const token = (sub: string, email: string, extra: Record<string, unknown> = {}) =>
    mint(f.keys[0], {iss: f.issuer, aud: 'dbgate-cli', sub, email, groups: ['engineering'], exp: Math.floor(Date.now() / 1000) + 3600, ...extra})
  /** Signs in as `user` with `password`: the session, or the error the client got. */
  const signIn = async (user: string, password: string): Promise<pg.Client | Error> => {
    const c = new pg.Client({host: '127.0.0.1', port: f.gw.address.port, database: 'app', user, password, ssl: f.ssl()})
    c.on('error', () => {})
    try {
      await c.connect()
      await c.query('select 1')
      open.push(c)
      return c
    } catch (error) {
      return error as Error
    }
  }
  const closeAll = () => Promise.all(open.splice(0).map((c) => c.end().catch(() => {})))

  it('refuses a sign-in past the cap under another subject with the same verified mailbox, however the address is spelled', async () => {
    // Alice's three sessions through dbgate's CLI client.
    for (let i = 0; i < 3; i++) expect(await signIn('alice@example.com', await token('alice-cli', 'alice@example.com'))).toBeInstanceOf(pg.Client)
    // The same person under the subjects her other clients see, and spellings of the same mailbox.
    for (const [sub, email] of [
      ['alice-ci', 'alice@example.com'],
      ['alice-agents', 'Alice@Example.COM'],
      ['alice-linked', 'alice+work@example.com'],
    ]) {
      const refused = await signIn(email!, await token(sub!, email!))
      expect(refused).toBeInstanceOf(Error)
      expect((refused as pg.DatabaseError).code).toBe('53300')
      expect((refused as Error).message).toMatch(/too many sessions: .* already has 3 session\(s\) open on this gateway.*server\.maxSessionsPerPerson/)
    }
    // Another person is not counted with her.
    expect(await signIn('bob@example.com', await token('bob-cli', 'bob@example.com'))).toBeInstanceOf(pg.Client)
    // An address the IdP has not verified names nobody: such a token is counted by its subject alone.
    expect(await signIn('mallory-cli', await token('mallory-cli', 'alice@example.com', {email_verified: false}))).toBeInstanceOf(pg.Client)
    await closeAll()
    // Places given back (once the server has ended those sessions): her other subjects sign in again.
    await waitFor(async () => (await signIn('alice@example.com', await token('alice-ci', 'alice@example.com'))) instanceof pg.Client, 'alice signs in again under another subject')
    await closeAll()
  }, 40_000)

  const fetchWithCa = throughDispatcher(() => dispatcher)
  const agent = async (bearer: string) => {
    const {client, transport} = await remoteAgent(`https://localhost:${f.gw.api!.port}/mcp/app`, bearer, {fetch: fetchWithCa, name: 'hosted-agent', version: '1'})
    agents.push(client)
    ends.push(() => transport.terminateSession().catch(() => {}))
    return async (sql: string) => textOf((await client.callTool({name: 'query', arguments: {sql}})) as CallToolResult)
  }

  it('ends her least recently used MCP session when she opens one past server.mcp.maxSessionsPerPerson under another subject', async () => {
    const first = await agent(await token('alice-cli', 'alice@example.com'))
    const second = await agent(await token('alice-agents', 'alice@example.com'))
    expect(await first('select 1 as one')).toContain('1 row')
    expect(await second('select 2 as two')).toContain('1 row')
    // A third, under yet another subject of hers: her least recently used one (the first) makes room.
    const third = await agent(await token('alice-ci', 'Alice@Example.com'))
    expect(await third('select 3 as three')).toContain('1 row')
    await expect(first('select 4 as four')).rejects.toThrow(/this MCP session has ended/)
    expect(await second('select 5 as five')).toContain('1 row')
    // Someone else's are their own.
    const bobs = await agent(await token('bob-cli', 'bob@example.com'))
    expect(await bobs('select 6 as six')).toContain('1 row')
    expect(await second('select 7 as seven')).toContain('1 row')
    // The agents end their MCP sessions (DELETE), which gives back their database sessions.
    await Promise.all(ends.splice(0).map((end) => end()))
  }, 40_000)

  it("counts an agent's database sessions on remote MCP under another subject of hers with her own", async () => {
    await closeAll()
    // Her places, once the agents' sessions of the case before have ended on the server.
    for (let i = 0; i < 3; i++) await waitFor(async () => (await signIn('alice@example.com', await token('alice-cli', 'alice@example.com'))) instanceof pg.Client, 'alice signs in')
    const query = await agent(await token('alice-agents', 'alice@example.com'))
    expect(await query('select 41 + 1 as answer')).toMatch(/too many sessions: .*server\.maxSessionsPerPerson/)
    await closeAll()
    await waitFor(async () => (await query('select 41 + 1 as answer')).includes('42'), "the agent's query runs once her sessions have ended")
  }, 40_000)
})
