/**
 * `dbgate mcp <target>` when dbgate.yaml names a gateway. Nothing is enforced here and no database
 * credential exists here: the agent's MCP messages (stdio) are carried to the gateway's remote MCP
 * endpoint, `https://<gateway.api>/mcp/<target>`, with the person's SSO token (renewed as it nears
 * expiry). The gateway runs the same tools through its own pipeline for this person and this agent
 * (its name and version come from the agent's own initialize message), as docs/agents.md says.
 */
import https from 'node:https'
import {isIP} from 'node:net'
import {readFile} from 'node:fs/promises'
import {Readable} from 'node:stream'
import {StreamableHTTPClientTransport, StreamableHTTPError} from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import type {Transport} from '@modelcontextprotocol/sdk/shared/transport.js'
import type {JSONRPCMessage} from '@modelcontextprotocol/sdk/types.js'
import {requireTrustedConfig} from '../config/trust.js'
import type {GatewayClientConfig, LoadedConfig} from '../config/types.js'
import {identityConfigFrom} from '../identity/cli.js'
import {getIdentity, type Session} from '../identity/session.js'

export interface GatewayBridgeOptions {
  loaded: LoadedConfig
  gateway: GatewayClientConfig
  targetName: string
  /** The agent's side: stdio in `dbgate mcp`. */
  agent: Transport
  env?: NodeJS.ProcessEnv
  log?: (level: 'info' | 'warn' | 'error', message: string) => void
}

/** The gateway's remote MCP URL for a target. */
export function gatewayMcpUrl(gw: GatewayClientConfig, target: string): URL {
  const host = gw.api.host.includes(':') ? `[${gw.api.host}]` : gw.api.host
  return new URL(`https://${host}:${gw.api.port}/mcp/${encodeURIComponent(target)}`)
}

/** `fetch` over node:https, trusting the gateway's CA (global fetch cannot be given one). */
function fetchTrusting(ca: string | undefined, bearer: () => Promise<string>): typeof fetch {
  return async (input, init) => {
    const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url)
    const headers = Object.fromEntries(new Headers(init?.headers))
    headers.authorization = `Bearer ${await bearer()}`
    return new Promise<Response>((resolve, reject) => {
      const req = https.request(url, {method: init?.method ?? 'GET', headers, ...(ca ? {ca} : {}), ...(isIP(url.hostname) ? {} : {servername: url.hostname})}, (res) => {
        const h = new Headers()
        for (const [k, v] of Object.entries(res.headers)) for (const x of [v ?? []].flat()) h.append(k, x)
        const empty = res.statusCode === 204 || res.statusCode === 304
        if (empty) res.resume()
        resolve(new Response(empty ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>), {status: res.statusCode ?? 502, headers: h}))
      })
      req.on('error', reject)
      const signal = init?.signal
      signal?.addEventListener('abort', () => req.destroy(Object.assign(new Error('aborted'), {name: 'AbortError'})), {once: true})
      req.end(typeof init?.body === 'string' ? init.body : undefined)
    })
  }
}

/** What went wrong reaching the gateway, in words the agent can pass on to its user. */
function describeFailure(error: unknown, where: string): string {
  const e = error as Error & {code?: unknown}
  if (error instanceof StreamableHTTPError) {
    const body = /Error POSTing to endpoint: (.*)$/s.exec(e.message)?.[1] ?? ''
    let said: string | undefined
    try {
      // A JSON-RPC error from the MCP endpoint, or the gateway API's own {error, message}.
      const parsed = JSON.parse(body) as {error?: string | {message?: string}; message?: string}
      said = typeof parsed.error === 'object' ? parsed.error.message : (parsed.message ?? parsed.error)
    } catch {
      said = undefined
    }
    const what = (said ?? e.message).replace(/^dbgate: /, '').replace(/\.+$/, '')
    if (e.code === 401) return `The gateway ${where} refused the sign-in: ${what}. Ask the user to run \`dbgate login\`, then call this tool again.`
    if (e.code === 403) return `The gateway ${where} refused: ${what}.`
    if (e.code === 404) return `The gateway ${where} has no MCP endpoint for this target (${what}). Check the name with \`dbgate targets\`; if it is listed, the gateway's administrators turn remote MCP on with server.mcp in gateway.yaml (docs/agents.md).`
    return `The gateway ${where} answered ${String(e.code)}: ${what}.`
  }
  if (typeof e.code === 'string' && /LOGIN|TOKEN|SIGN/i.test(e.code)) return `Not signed in to dbgate (${e.code}): ${e.message} Ask the user to run \`dbgate login\`, then call this tool again.`
  return `Could not reach the gateway ${where}: ${e.message}. Check gateway.api and gateway.ca in dbgate.yaml, and that the gateway is running.`
}

/** Carries the agent's MCP session to the gateway until either side closes. */
export async function runGatewayBridge(opts: GatewayBridgeOptions): Promise<void> {
  const env = opts.env ?? process.env
  await requireTrustedConfig(opts.loaded, 'gateway', env)
  const log = opts.log ?? (() => {})
  const url = gatewayMcpUrl(opts.gateway, opts.targetName)
  const where = url.origin
  const identity = await identityConfigFrom(opts.loaded, env)
  const ca = opts.gateway.ca ? await readFile(opts.gateway.ca, 'utf8') : undefined
  // The sign-in (stored, or a service's client credentials), fetched again only when its token
  // nears expiry: a service identity must not ask the IdP for a token on every request.
  let session: Session | undefined
  const bearer = async () => {
    if (!session || session.identity.expiresAt.getTime() - Date.now() < 60_000) session = await getIdentity(identity, {env})
    return session.token
  }
  const gateway = new StreamableHTTPClientTransport(url, {fetch: fetchTrusting(ca, bearer)})
  const agent = opts.agent

  const done = new Promise<void>((resolve) => {
    let closing = false
    const close = () => {
      if (closing) return
      closing = true
      Promise.allSettled([gateway.terminateSession().catch(() => {}), gateway.close(), agent.close()]).then(() => resolve())
    }
    agent.onclose = close
    gateway.onclose = close
  })
  agent.onmessage = (message: JSONRPCMessage) => {
    gateway.send(message).catch((error: unknown) => {
      const text = describeFailure(error, where)
      log('error', text)
      // A request gets its answer, so the agent is never left waiting; a notification has none.
      if ('id' in message && 'method' in message) void agent.send({jsonrpc: '2.0', id: message.id, error: {code: -32000, message: text}})
    })
  }
  gateway.onmessage = (message: JSONRPCMessage) => {
    // The negotiated version goes on every later request, as the Streamable HTTP transport asks.
    const version = 'result' in message ? (message.result as {protocolVersion?: unknown}).protocolVersion : undefined
    if (typeof version === 'string') gateway.setProtocolVersion(version)
    void agent.send(message)
  }
  gateway.onerror = (error) => log('info', describeFailure(error, where))
  agent.onerror = (error) => log('warn', `stdio: ${error.message}`)
  await gateway.start()
  await agent.start()
  log('info', `carrying MCP for ${opts.targetName} to the gateway at ${url.href}; the gateway enforces policy, masking, approvals and recording`)
  await done
}
