import {readFileSync, writeFileSync} from 'node:fs'
import path from 'node:path'
import {Client} from '@modelcontextprotocol/sdk/client/index.js'
import {StdioClientTransport} from '@modelcontextprotocol/sdk/client/stdio.js'
import {InMemoryTransport} from '@modelcontextprotocol/sdk/inMemory.js'
import type {CallToolResult} from '@modelcontextprotocol/sdk/types.js'
import {trustConfigFile} from '../../src/config/trust.js'
import {openTunnel} from '../../src/connect/open.js'
import type {LoadedConfig} from '../../src/config/types.js'
import type {AgentInfo} from '../../src/identity/types.js'
import type {SqlEndpoint} from '../../src/mcp/endpoint.js'
import {createDbgateMcp, type DbgateMcp} from '../../src/mcp/server.js'
import type {TargetConfig} from '../../src/config/types.js'
import {isolatedEnv, targetConfigText} from '../helpers/open.js'
import type {UpstreamInfo} from '../helpers/pg.js'

export const BIN = path.resolve('bin/run.js')

/** A dbgate.yaml with an identity section, a file bucket and the given targets, each in front of `db`. */
export function writeConfig(dir: string, db: UpstreamInfo, identity: {issuer: string; clientId: string}, bucketUrl: string, targets: Record<string, string>): string {
  const lines = [`identity:`, `  issuer: ${identity.issuer}`, `  clientId: ${identity.clientId}`, `bucket: ${bucketUrl}`, 'targets:']
  for (const [name, extra] of Object.entries(targets)) lines.push(...targetConfigText(name, db, extra))
  const file = path.join(dir, 'dbgate.yaml')
  writeFileSync(file, lines.join('\n') + '\n')
  return file
}

/** Private XDG directories for one agent process: its spool, keys and caches. */
export function agentHome(): NodeJS.ProcessEnv {
  // The config home is the signed-in person's (their token store), so it is not replaced here.
  const {XDG_CONFIG_HOME: _configHome, ...home} = isolatedEnv()
  return home
}

export interface Agent {
  client: Client
  stderr(): string
  call(name: string, args?: Record<string, unknown>): Promise<CallToolResult>
  close(): Promise<void>
}

/**
 * What the person does once for the file their agent's MCP configuration names (DBGATE_CONFIG):
 * `dbgate config trust <file>`, without which `dbgate mcp` sends their sign-in and passwords nowhere.
 */
export async function trustAgentConfig(env: NodeJS.ProcessEnv): Promise<void> {
  const file = env.DBGATE_CONFIG
  if (file) await trustConfigFile(file, readFileSync(file, 'utf8'), env)
}

/** `dbgate mcp <target>` as an agent launches it: the built binary over stdio, driven by the official MCP client. */
export async function startAgent(target: string, env: NodeJS.ProcessEnv, info = {name: 'test-agent', version: '9.9.9'}): Promise<Agent> {
  await trustAgentConfig(env)
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [BIN, 'mcp', target],
    env: Object.fromEntries(Object.entries({...process.env, DBGATE_TOKEN: '', DBGATE_CLIENT_ID: '', DBGATE_CLIENT_SECRET: '', ...env}).filter((e): e is [string, string] => e[1] !== undefined)),
    stderr: 'pipe',
  })
  let stderr = ''
  transport.stderr?.on('data', (d: Buffer) => (stderr += d.toString()))
  const client = new Client(info)
  await client.connect(transport)
  return {
    client,
    stderr: () => stderr,
    call: async (name, args = {}) => (await client.callTool({name, arguments: args}, undefined, {timeout: 120_000})) as CallToolResult,
    close: () => client.close(),
  }
}

export function textOf(r: CallToolResult): string {
  return r.content.map((c) => (c.type === 'text' ? c.text : '')).join('\n')
}

/** An MCP server's endpoint: a real tunnel to target `app` of `loaded`, opened for each agent session. */
export function tunnelEndpoint(loaded: LoadedConfig, env: NodeJS.ProcessEnv): (agent?: AgentInfo) => Promise<SqlEndpoint> {
  return async (agent) => {
    const opened = await openTunnel({loaded, targetName: 'app', env, agent})
    const {info} = opened
    return {
      clientConfig: () => ({host: info.host, port: info.port, user: info.user, password: info.password, database: info.database, ssl: false}),
      identity: () => undefined,
      closed: opened.closed,
      close: () => opened.close(500),
    }
  }
}

/** Calls one tool of an MCP server as the official client does, and returns its result. */
export type ToolCall = (name: string, args?: Record<string, unknown>) => Promise<CallToolResult>

/**
 * The MCP server for `target`, in this process, and the official MCP client connected to it over an
 * in-memory transport: the tools as an agent calls them, without a process per test.
 */
export async function inProcessAgent(target: TargetConfig, openEndpoint: Parameters<typeof createDbgateMcp>[0]['openEndpoint'], name = 'test-agent'): Promise<{mcp: DbgateMcp; call: ToolCall}> {
  const mcp = createDbgateMcp({target, version: 'test', openEndpoint})
  const [serverSide, clientSide] = InMemoryTransport.createLinkedPair()
  await mcp.server.connect(serverSide)
  const client = new Client({name, version: '1'})
  await client.connect(clientSide)
  return {mcp, call: async (tool, args = {}) => (await client.callTool({name: tool, arguments: args}, undefined, {timeout: 60_000})) as CallToolResult}
}

/** One JSON-RPC answer an MCP server wrote on stdout. */
export type StdioAnswer = {id?: unknown; result?: {content?: {text: string}[]; isError?: boolean}; error?: {code: number; message: string}}

/** The answers in what an MCP server over stdio has written so far, one JSON message per line. */
export function stdioAnswers(out: string): StdioAnswer[] {
  return out
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as StdioAnswer)
}
