import {readFileSync} from 'node:fs'
import {mkdtemp} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {Client} from '@modelcontextprotocol/sdk/client/index.js'
import type {CallToolResult} from '@modelcontextprotocol/sdk/types.js'
import {Agent} from 'undici'
import {afterAll, afterEach, beforeAll, describe, expect, it} from 'vitest'
import type {LoadedConfig} from '../../src/config/types.js'
import {startGateway, type RunningGateway} from '../../src/gateway/gateway.js'
import {fixture, mint, type Fixture} from '../identity/helpers.js'
import {isolatedEnv, targetConfigText} from '../helpers/open.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {waitFor} from '../helpers/wait.js'
import {textOf} from '../mcp/helpers.js'
import {closeGatewayTest, gatewayConfig, makePki, recordingsUnder, remoteAgent, type TestPki, throughDispatcher} from '../gateway/helpers.js'

interface Line {
  type: string
  data: {agent?: {name: string}; client?: {application?: string}; reason?: string; sql?: string; outcome?: string; error?: {sqlstate: string}}
}

/**
 * A gateway ends a remote MCP session on its own (a reload that takes its owner's access away, the
 * session's maximum duration): its database sessions were closed by the MCP server as a client
 * closes them, so each log ended `client-closed`, as if the agent had hung up, and the statement it
 * was running was cancelled with nothing in the log saying by whom. A person's psql session ended
 * the same way records the gateway's reason. The MCP session's logs now end with the gateway's
 * reason too, and the statement in flight is recorded as the server ended it.
 */
describe('recording: a remote MCP session the gateway ended', () => {
  let f: Fixture
  let pki: TestPki
  let db: UpstreamInfo
  let dir: string
  let env: NodeJS.ProcessEnv
  let gw: RunningGateway
  let next: LoadedConfig
  let dispatcher: Agent
  const agents: Client[] = []

  /** `app` allowing `allow` (none when undefined), and `ops`, which a reload never changes. */
  const configWith = (allow: string | undefined) =>
    gatewayConfig({
      pki,
      dir,
      issuer: f.dev.issuer,
      clientId: f.dev.cliClientId,
      env,
      server: ['mcp: {publicUrl: https://gw.test:8443}'],
      targets: [...(allow === undefined ? [] : targetConfigText('app', db, `allow: ${allow}`)), ...targetConfigText('ops', db, 'allow: [engineering]')],
    })

  beforeAll(async () => {
    ;[f, pki, db] = await Promise.all([fixture(), makePki(), createTestDatabase('mcpsessionend')])
    dir = await mkdtemp(path.join(tmpdir(), 'dbgate-mcpsessionend-'))
    env = {...isolatedEnv(), TEST_APP_PASSWORD: db.password}
    next = configWith('[engineering]')
    gw = await startGateway({loaded: next, env, reloadConfig: async () => next})
    await gw.whenReady()
    dispatcher = new Agent({connect: {ca: readFileSync(pki.ca, 'utf8')}})
  })
  afterEach(async () => {
    await Promise.all(agents.splice(0).map((c) => c.close().catch(() => {})))
    next = configWith('[engineering]')
    await gw.reload()
  })
  afterAll(async () => {
    await dispatcher?.close()
    await closeGatewayTest(gw, f, [dir, pki?.dir])
  })

  const fetchWithCa = throughDispatcher(() => dispatcher)
  const token = () => mint(f.signingKey, {iss: f.dev.issuer, aud: f.dev.cliClientId, sub: 'alice', email: 'alice@example.com', groups: ['engineering'], exp: Math.floor(Date.now() / 1000) + 600})
  const backends = () => withClient(db.url, async (c) => Number((await c.query<{n: string}>("select count(*) as n from pg_stat_activity where datname = current_database() and application_name like 'dbgate/alice@example.com%'")).rows[0]!.n))

  /** Every log of the agent named `agent`, once each has ended. */
  async function logsOf(agent: string): Promise<Line[][]> {
    let logs: Line[][] = []
    await waitFor(
      () => {
        logs = recordingsUnder(dir)
          .map((text) => text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Line))
          .filter((lines) => lines[0]?.data.agent?.name === agent)
        return logs.length > 0 && logs.every((lines) => lines.some((l) => l.type === 'session.end'))
      },
      `the logs of ${agent} have ended`,
      {timeoutMs: 15_000},
    )
    return logs
  }

  const takeAway: [string, () => LoadedConfig, RegExp][] = [
    ['its allow no longer lists her group', () => configWith('[dba]'), /this MCP session has ended: alice@example\.com may no longer use target "app"/],
    ['the target is removed', () => configWith(undefined), /this MCP session has ended: the gateway no longer serves target "app"/],
  ]

  for (const running of [false, true]) {
    it.each(takeAway)(`records the gateway's reason as the end of each database session when a reload ends it because %s${running ? ', and the statement it was running' : ''}`, async (label, config, why) => {
      const name = `agent-${label.replace(/\W+/g, '-')}-${running ? 'busy' : 'idle'}`
      const {client} = await remoteAgent(`https://localhost:${gw.api!.port}/mcp/app`, await token(), {fetch: fetchWithCa, name})
      agents.push(client)
      expect(textOf((await client.callTool({name: 'query', arguments: {sql: 'select 41 as answer'}})) as CallToolResult)).toContain('41')
      const sleeping = running ? client.callTool({name: 'query', arguments: {sql: `select pg_sleep(25) /* ${name} */`}}, undefined, {timeout: 60_000}).catch((e: Error) => e) : undefined
      if (running) await waitFor(() => withClient(db.url, async (c) => (await c.query("select 1 from pg_stat_activity where datname = current_database() and query like 'select pg_sleep(25)%' and state = 'active'")).rowCount === 1), 'the statement runs')

      next = config()
      await gw.reload()
      await waitFor(async () => (await backends()) === 0, "her MCP session's database sessions have closed", {timeoutMs: 10_000})
      void sleeping

      const logs = await logsOf(name)
      for (const lines of logs) {
        const end = lines.find((l) => l.type === 'session.end')!
        expect(end.data.reason, JSON.stringify(lines.map((l) => [l.type, l.data.sql, l.data.outcome, l.data.reason]))).toMatch(why)
      }
      if (running) {
        const slept = logs.flat().filter((l) => l.type === 'statement' && l.data.sql?.includes(name))
        expect(slept).toHaveLength(1)
        expect(slept[0]!.data.outcome).toBe('error')
        expect(slept[0]!.data.error?.sqlstate).toBe('57014')
      }
    }, 40_000)
  }
})
