import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {startGateway, type RunningGateway} from '../../src/gateway/gateway.js'
import {people, type People} from '../approvals/helpers.js'
import {isolatedEnv, targetConfigText} from '../helpers/open.js'
import {createTestDatabase, type UpstreamInfo} from '../helpers/pg.js'
import {waitFor} from '../helpers/wait.js'
import {gatewayConfig, makePki, type TestPki} from '../gateway/helpers.js'
import {agentHome, startAgent, textOf, type Agent} from './helpers.js'

/**
 * The gateway ends a remote MCP session on its own (server.maxSessionDuration here; equally its
 * sign-in expiring while the agent is idle, the idle timeout, a restart). `dbgate mcp` carrying an
 * agent to it must not leave the agent with a dead session that answers every later call with an
 * error: the agent's next call runs in a new gateway session.
 */
describe('dbgate mcp through a gateway: a session the gateway ended', () => {
  let p: People
  let pki: TestPki
  let db: UpstreamInfo
  let gw: RunningGateway
  let dir: string
  let env: NodeJS.ProcessEnv
  const ended: string[] = []
  const agents: Agent[] = []

  beforeAll(async () => {
    ;[p, pki, db] = await Promise.all([people(), makePki(), createTestDatabase('mcpgwend')])
    await p.login('alice')
    dir = await mkdtemp(path.join(tmpdir(), 'dbgate-mcp-gwend-'))
    const gwEnv = {...isolatedEnv(), TEST_APP_PASSWORD: db.password}
    gw = await startGateway({
      loaded: gatewayConfig({pki, dir, issuer: p.f.dev.issuer, clientId: p.f.dev.cliClientId, env: gwEnv, server: ['mcp: {publicUrl: https://gw.test:8443}', 'maxSessionDuration: 3s'], targets: targetConfigText('app', db, 'allow: [engineering]')}),
      env: gwEnv,
      log: (_level, message) => {
        if (/MCP session \S+ on app ended \(reached the gateway's maximum session duration/.test(message)) ended.push(message)
      },
    })
    const clientConfig = path.join(dir, 'dbgate.yaml')
    await writeFile(clientConfig, ['identity:', `  issuer: ${p.f.dev.issuer}`, `  clientId: ${p.f.dev.cliClientId}`, 'gateway:', `  address: 127.0.0.1:${gw.address.port}`, `  ca: ${pki.ca}`, `  api: 127.0.0.1:${gw.api!.port}`, ''].join('\n'))
    env = {...agentHome(), ...p.env('alice'), DBGATE_CONFIG: clientConfig}
  })
  afterAll(async () => {
    await Promise.all(agents.map((a) => a.close().catch(() => {})))
    await gw?.close(500)
    await p?.close()
    if (dir) await rm(dir, {recursive: true, force: true})
    if (pki) await rm(pki.dir, {recursive: true, force: true})
  })

  it("carries the agent's next call into a new gateway session", async () => {
    const a = await startAgent('app', env)
    agents.push(a)
    const first = await a.call('query', {sql: 'select 1 as one'})
    expect(first.isError, textOf(first)).toBeFalsy()
    await waitFor(() => ended.length > 0, 'the gateway ended the MCP session at maxSessionDuration', {timeoutMs: 20_000, intervalMs: 100})
    for (const sql of ['select 2 as two', 'select 3 as three']) {
      const r = await a.call('query', {sql})
      expect(r.isError, textOf(r)).toBeFalsy()
      expect(textOf(r)).toMatch(/"(two|three)":"[23]"/)
    }
  })
})
