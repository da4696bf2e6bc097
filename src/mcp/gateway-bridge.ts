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
import {isInitializeRequest, type JSONRPCMessage, type JSONRPCRequest} from '@modelcontextprotocol/sdk/types.js'
import {requireTrustedConfig} from '../config/trust.js'
import type {GatewayClientConfig, LoadedConfig} from '../config/types.js'
import {identityConfigFrom} from '../identity/cli.js'
import {getIdentity, type Session} from '../identity/session.js'
import {forwardableRefusal} from './refused-arguments.js'
import {REFUSED_BY_MCP_HEADER} from './stdio.js'

export interface GatewayBridgeOptions {
  loaded: LoadedConfig
  gateway: GatewayClientConfig
  targetName: string
  /** The agent's side: stdio in `dbgate mcp`, which hands what it refuses to `onrefused`. */
  agent: Transport & {onrefused?: (value: unknown, what: string) => Promise<void> | void}
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
    if (e.code === 404 && /MCP session/.test(what)) return `The gateway ${where} ended the MCP session (${what}), and a new one could not be opened; call this tool again.`
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
  const fetchGateway = fetchTrusting(ca, bearer)
  let gateway = new StreamableHTTPClientTransport(url, {fetch: fetchGateway})
  const agent = opts.agent
  // The agent's own initialize request, replayed when the gateway ends the session (see reopen).
  let initialize: JSONRPCRequest | undefined
  let reopening: Promise<void> | undefined
  let replays = 0
  const replayed = new Map<string, (message: JSONRPCMessage) => void>()

  let closeBridge: () => void = () => {}
  const done = new Promise<void>((resolve) => {
    let closing = false
    closeBridge = () => {
      if (closing) return
      closing = true
      Promise.allSettled([gateway.terminateSession().catch(() => {}), gateway.close(), agent.close()]).then(() => resolve())
    }
    agent.onclose = closeBridge
    gateway.onclose = closeBridge
  })
  const wire = (t: StreamableHTTPClientTransport) => {
    t.onmessage = (message: JSONRPCMessage) => {
      // The answer to a replayed initialize is the bridge's, not the agent's: it already has one.
      const mine = 'id' in message && typeof message.id === 'string' ? replayed.get(message.id) : undefined
      if (mine) return mine(message)
      // The negotiated version goes on every later request, as the Streamable HTTP transport asks.
      const version = 'result' in message ? (message.result as {protocolVersion?: unknown}).protocolVersion : undefined
      if (typeof version === 'string') t.setProtocolVersion(version)
      void agent.send(message)
    }
    t.onerror = (error) => log('info', describeFailure(error, where))
  }

  /**
   * The gateway ends an MCP session (its sign-in expired while the agent was idle, its maximum
   * duration, an idle timeout, a restart): a request for it is answered 404. The agent's MCP session
   * with this process goes on, so a new gateway session is opened under it, with the agent's own
   * initialize replayed; what the old one held (a statement waiting for approval) ended with it.
   */
  const reopen = async (): Promise<void> => {
    if (!initialize) throw new Error('the gateway ended the MCP session before it was initialized')
    const old = gateway
    old.onclose = undefined
    old.onmessage = undefined
    old.onerror = undefined
    await old.close().catch(() => {})
    const fresh = new StreamableHTTPClientTransport(url, {fetch: fetchGateway})
    wire(fresh)
    fresh.onclose = () => gateway === fresh && closeBridge()
    await fresh.start()
    const id = `dbgate-bridge-reinitialize-${++replays}`
    const answered = new Promise<JSONRPCMessage>((resolve) => replayed.set(id, resolve))
    try {
      await fresh.send({...initialize, id})
      const answer = await answered
      if ('error' in answer) throw new Error(`the gateway refused to open a new MCP session: ${String((answer.error as {message?: unknown}).message)}`)
      const version = 'result' in answer ? (answer.result as {protocolVersion?: unknown}).protocolVersion : undefined
      if (typeof version === 'string') fresh.setProtocolVersion(version)
      await fresh.send({jsonrpc: '2.0', method: 'notifications/initialized'})
    } finally {
      replayed.delete(id)
    }
    gateway = fresh
    log('info', `the gateway ended the MCP session; carrying on in a new one (${fresh.sessionId ?? 'no id'})`)
  }

  /** Sends to the gateway; a session it ended is opened again once, and the message sent there. */
  const forward = async (message: JSONRPCMessage): Promise<void> => {
    if (isInitializeRequest(message) && 'id' in message) initialize = message as JSONRPCRequest
    if (reopening) await reopening.catch(() => {})
    const via = gateway
    try {
      await via.send(message)
    } catch (error) {
      const ended = error instanceof StreamableHTTPError && error.code === 404 && via.sessionId !== undefined && initialize !== undefined && message !== initialize
      if (!ended) throw error
      if (gateway === via) reopening ??= reopen().finally(() => (reopening = undefined))
      await reopening
      await gateway.send(message)
    }
  }

  /**
   * A tools/call the stdio transport refused never reaches the gateway's MCP server, and the gateway
   * is the only place that records: it is sent under REFUSED_BY_MCP_HEADER, which the gateway
   * records as refused in the session's log and never runs. Awaited before the agent is answered.
   */
  agent.onrefused = async (value, what) => {
    if (typeof value !== 'object' || value === null || (value as {method?: unknown}).method !== 'tools/call') return
    const body = JSON.stringify(forwardableRefusal(value))
    const post = async (): Promise<number> => {
      const sessionId = gateway.sessionId
      if (sessionId === undefined) return 0
      const res = await fetchGateway(url, {method: 'POST', headers: {'content-type': 'application/json', 'mcp-session-id': sessionId, [REFUSED_BY_MCP_HEADER]: encodeURIComponent(what)}, body})
      await res.text().catch(() => '')
      return res.status
    }
    try {
      if (reopening) await reopening.catch(() => {})
      let status = await post()
      if (status === 404 && initialize) {
        reopening ??= reopen().finally(() => (reopening = undefined))
        await reopening
        status = await post()
      }
      if (status !== 202) log('warn', `a tools/call refused here (${what}) was not recorded at the gateway: ${status === 0 ? 'no gateway session is open yet (the agent sent it before initialize)' : `the gateway answered ${status}`}`)
    } catch (error) {
      log('warn', `a tools/call refused here (${what}) was not recorded at the gateway: ${describeFailure(error, where)}`)
    }
  }

  // The gateway refuses a request whose id one still in flight has; one the agent cancelled is freed
  // by the cancellation, so a request reusing that id is sent once the cancellation has arrived.
  const cancelling = new Map<string | number, Promise<void>>()
  agent.onmessage = (message: JSONRPCMessage) => {
    const m = message as {id?: string | number; method?: unknown; params?: {requestId?: string | number}}
    const after = m.id !== undefined && typeof m.method === 'string' ? cancelling.get(m.id) : undefined
    const sent = after ? after.then(() => forward(message)) : forward(message)
    const cancelled = m.method === 'notifications/cancelled' ? m.params?.requestId : undefined
    if (cancelled !== undefined) {
      const arrived = sent.catch(() => {})
      cancelling.set(cancelled, arrived)
      void arrived.then(() => cancelling.get(cancelled) === arrived && cancelling.delete(cancelled))
    }
    sent.catch((error: unknown) => {
      const text = describeFailure(error, where)
      log('error', text)
      // A request gets its answer, so the agent is never left waiting; a notification has none.
      if ('id' in message && 'method' in message) void agent.send({jsonrpc: '2.0', id: message.id, error: {code: -32000, message: text}})
    })
  }
  wire(gateway)
  agent.onerror = (error) => log('warn', `stdio: ${error.message}`)
  await gateway.start()
  await agent.start()
  log('info', `carrying MCP for ${opts.targetName} to the gateway at ${url.href}; the gateway enforces policy, masking, approvals and recording`)
  await done
}
