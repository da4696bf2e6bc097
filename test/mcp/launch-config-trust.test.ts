import {mkdir, mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import net, {type AddressInfo} from 'node:net'
import {tmpdir} from 'node:os'
import path from 'node:path'
import tls from 'node:tls'
import {Client} from '@modelcontextprotocol/sdk/client/index.js'
import {StdioClientTransport} from '@modelcontextprotocol/sdk/client/stdio.js'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {makePki, type TestPki} from '../gateway/helpers.js'
import {fixture, loginAs, type Fixture} from '../identity/helpers.js'
import {isolatedEnv} from '../helpers/open.js'
import {run} from '../helpers/run.js'
import {BIN} from './helpers.js'

/**
 * `dbgate mcp` is started by an agent from its MCP configuration, and the documented one names the
 * file with DBGATE_CONFIG=./dbgate.yaml in a project's `.mcp.json`: both can come with a repository
 * someone clones, and an agent that may edit files may edit either. Named that way, the file was
 * not named by the person, yet it skipped the trust a ./dbgate.yaml found in the directory needs:
 * its "gateway" received the person's sign-in, its "target" the password from their environment.
 * The planted gateway and database are loopback listeners that count TCP connections.
 */
describe('dbgate mcp with a configuration its launcher named', () => {
  let f: Fixture
  let pki: TestPki
  let repo: string
  let env: NodeJS.ProcessEnv
  let gateway: tls.Server
  let database: net.Server
  let connections = 0
  let stderr = ''

  /** The agent starting `dbgate mcp <target>` in the repository, and making one call. */
  const agent = async (target: string, how: {env?: string; flag?: string}, home = env) => {
    stderr = ''
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [BIN, 'mcp', target, ...(how.flag ? ['--config', how.flag] : [])],
      cwd: repo,
      env: Object.fromEntries(Object.entries({...process.env, ...home, DBGATE_CONFIG: how.env ?? ''}).filter((e): e is [string, string] => e[1] !== undefined)),
      stderr: 'pipe',
    })
    transport.stderr?.on('data', (d: Buffer) => (stderr += d.toString()))
    const client = new Client({name: 'cloned-repo-agent', version: '1'})
    try {
      await client.connect(transport)
      await client.callTool({name: 'query', arguments: {sql: 'select 1'}}, undefined, {timeout: 20_000}).catch(() => undefined)
    } catch {
      // Refused before the handshake: the process exited.
    } finally {
      await client.close().catch(() => {})
    }
    return stderr
  }

  beforeAll(async () => {
    ;[f, pki] = await Promise.all([fixture(), makePki()])
    gateway = tls.createServer({cert: await readFile(pki.cert), key: await readFile(pki.key)}, (s) => s.destroy())
    gateway.on('connection', () => connections++)
    gateway.on('tlsClientError', () => {})
    database = net.createServer((s) => s.destroy())
    database.on('connection', () => connections++)
    await Promise.all([new Promise<void>((r) => gateway.listen(0, '127.0.0.1', r)), new Promise<void>((r) => database.listen(0, '127.0.0.1', r))])
    const gw = (gateway.address() as AddressInfo).port
    const db = (database.address() as AddressInfo).port
    repo = await mkdtemp(path.join(tmpdir(), 'dbgate-cloned-'))
    await mkdir(path.join(repo, 'gw'))
    await writeFile(path.join(repo, 'gw', 'dbgate.yaml'), ['identity:', `  issuer: ${f.dev.issuer}`, `  clientId: ${f.dev.cliClientId}`, 'gateway:', `  address: 127.0.0.1:${gw}`, `  ca: ${pki.ca}`, `  api: 127.0.0.1:${gw}`, ''].join('\n'))
    await writeFile(path.join(repo, 'dbgate.yaml'), ['targets:', '  prod:', '    host: 127.0.0.1', `    port: ${db}`, '    database: app', '    user: app', '    password: env:PROD_DB_PASSWORD', '    tls: disable', '    connectTimeout: 2s', ''].join('\n'))
    env = {...isolatedEnv(), XDG_CONFIG_HOME: f.env.XDG_CONFIG_HOME, DBGATE_KEYRING: 'off', PROD_DB_PASSWORD: 'the-persons-secret', DBGATE_TOKEN: '', DBGATE_CLIENT_ID: '', DBGATE_CLIENT_SECRET: ''}
    await loginAs(f, {user: 'alice'})
  })
  afterAll(async () => {
    await new Promise((r) => gateway?.close(r))
    await new Promise((r) => database?.close(r))
    await f?.close()
    await Promise.all([repo, pki?.dir].filter(Boolean).map((d) => rm(d!, {recursive: true, force: true})))
  })

  const CASES: [what: string, how: {env?: string; flag?: string}, told: RegExp][] = [
    ['a gateway, by DBGATE_CONFIG', {env: './gw/dbgate.yaml'}, /\(DBGATE_CONFIG\) by the configuration that started this MCP server, and you have not trusted it: it names a gateway, 127\.0\.0\.1:\d+, that would receive your sign-in/],
    ['a gateway, by --config', {flag: './gw/dbgate.yaml'}, /\(--config\) by the configuration that started this MCP server, and you have not trusted it: it names a gateway/],
    ['a target taking your password, by DBGATE_CONFIG', {env: './dbgate.yaml'}, /\(DBGATE_CONFIG\) by the configuration that started this MCP server, and you have not trusted it: it names a target, prod, at 127\.0\.0\.1:\d+, that would receive your password from env:PROD_DB_PASSWORD/],
    ['a target taking your password, by --config, as an absolute path', {flag: 'ABS'}, /\(--config\) by the configuration that started this MCP server, and you have not trusted it: it names a target, prod/],
  ]

  it.each(CASES)('sends nothing to %s until the person trusts the file', async (_what, how, told) => {
    const named = how.flag === 'ABS' ? {flag: path.join(repo, 'dbgate.yaml')} : how
    const said = await agent('prod', named)
    expect(said).toMatch(told)
    expect(said).toContain('Nothing was sent.')
    expect(said).toMatch(/dbgate config trust \//)
    expect(said).not.toContain('the-persons-secret')
    expect(connections).toBe(0)
  })

  it('goes where the file says once trusted, and stops again when it changes', async () => {
    const trusted = await run('node', [BIN, 'config', 'trust', './dbgate.yaml'], {cwd: repo, env})
    expect(trusted.code, trusted.stderr).toBe(0)
    // The listener is no database: the call fails there, but it did go.
    await agent('prod', {env: './dbgate.yaml'})
    expect(stderr).not.toMatch(/not trusted|CONFIG_UNTRUSTED/)
    expect(connections).toBeGreaterThan(0)
    const before = connections
    await writeFile(path.join(repo, 'dbgate.yaml'), `${await readFile(path.join(repo, 'dbgate.yaml'), 'utf8')}# an agent was here\n`)
    expect(await agent('prod', {env: './dbgate.yaml'})).toMatch(/and has changed since you trusted it: it names a target, prod/)
    expect(connections).toBe(before)
  })

  it("takes the person's own config.yaml named by DBGATE_CONFIG without trust", async () => {
    const home = {...env, XDG_CONFIG_HOME: await mkdtemp(path.join(tmpdir(), 'dbgate-own-'))}
    const own = path.join(home.XDG_CONFIG_HOME!, 'dbgate', 'config.yaml')
    await mkdir(path.dirname(own), {recursive: true})
    await writeFile(own, await readFile(path.join(repo, 'dbgate.yaml'), 'utf8'))
    const before = connections
    expect(await agent('prod', {env: own}, home)).not.toMatch(/not trusted|CONFIG_UNTRUSTED/)
    expect(connections).toBeGreaterThan(before)
  })
})
