/**
 * Remote MCP: the tools of `dbgate mcp` over Streamable HTTP, for agent platforms that cannot run
 * a local process. The server is an OAuth 2.1 resource server as the MCP authorization spec asks:
 * every request carries the agent's bearer token, checked here (signature, issuer, audience,
 * expiry, the target's `allow`); a request without one is answered 401 with a pointer to the
 * protected-resource metadata (RFC 9728), which names the identity provider to get one from.
 *
 * The token proves who the agent acts for; it is never passed to the database. What the tools run
 * goes through `openEndpoint`, the same governed pipeline as every other session.
 *
 * Each MCP session is bound to the subject that initialized it: a request for that session with
 * another person's token is refused, so a leaked session id alone is worth nothing.
 */
import {randomUUID} from 'node:crypto'
import type {IncomingMessage, ServerResponse} from 'node:http'
import {StreamableHTTPServerTransport} from '@modelcontextprotocol/sdk/server/streamableHttp.js'
import {isInitializeRequest, JSONRPCMessageSchema} from '@modelcontextprotocol/sdk/types.js'
import type {TargetConfig} from '../config/types.js'
import {identityLabel, samePerson, type AgentInfo, type Identity} from '../identity/types.js'
import type {SqlEndpoint} from './endpoint.js'
import {createDbgateMcp, type DbgateMcp} from './server.js'
import {MAX_BATCH, notAMessage, REFUSED_BY_MCP_HEADER} from './stdio.js'
import {keepAliveVerified} from '../util/keep-alive.js'
import {formatDuration} from '../util/duration.js'
import {BAD_REQUEST_TARGET, requestPath} from '../util/request-target.js'

/** The outcome of checking one bearer token for one target. */
export type BearerCheck =
  | {ok: true; identity: Identity}
  /** 401 `invalid_token` (expired, wrong audience, …), 403 `insufficient_scope` (outside the target's `allow`), 404 no such target (the token verified), 503 not ready. */
  | {
      ok: false
      status: 401 | 403 | 404 | 503
      description: string
      /** Why, as a fixed word the gateway's metrics count it by (never text from the token): for the log. */
      reason?: string
      /** With 403: who the token proved, though the target does not let them in (now). */
      identity?: Identity
    }

export interface OpenRemoteEndpoint {
  identity: Identity
  target: TargetConfig
  agent: AgentInfo
  /** Where the agent's initialize request came from (`host:port`), recorded as the session's client address. */
  clientAddress: string
}

export interface McpHttpOptions {
  /** Where agents reach this server, scheme and authority only (e.g. `https://gw.internal:8443`). */
  publicOrigin: string
  /** The identity providers (issuer URLs) whose tokens this resource accepts. */
  authorizationServers: string[]
  /** The targets served, by name; looked up on every request so a reload takes effect. */
  target(name: string): TargetConfig | undefined
  /**
   * Verifies a bearer token for the target of that name, which may not exist: an unknown name is
   * answered only after the token (`status: 404`). Must not throw for a bad token: answer `ok: false`.
   */
  authenticate(token: string, targetName: string, request: {address: string; agent?: string}): Promise<BearerCheck>
  /** Opens the governed SQL endpoint an MCP session's tools run on. */
  openEndpoint(request: OpenRemoteEndpoint): Promise<SqlEndpoint>
  /**
   * How the target of that name is served now (its settings and policy), as a string that changes
   * when they do (a gateway reload). A session runs on a pipeline built for the target as it was:
   * it ends when this changes, so that a rule tightened, or `mcp.mode: read-only` set, applies to
   * the agents already connected from their next request. Default: never ends for that.
   */
  servedAs?(name: string): string | undefined
  /** Browser origins allowed to call (the MCP spec asks servers to check Origin); default none. */
  allowedOrigins?: string[]
  /** Sessions open at once across all agents (default 200); past it, new sessions get 503. */
  maxSessions?: number
  /**
   * Sessions one person keeps at once (default 16): opening another ends their least recently
   * used one, so one person's agents cannot take every session `maxSessions` allows.
   */
  maxSessionsPerPerson?: number
  /** An MCP session with no request for this long is closed (default 30 minutes). */
  idleTimeoutMs?: number
  /**
   * How long a session lives, however fresh the tokens it is used with (the gateway's
   * server.maxSessionDuration, which its PostgreSQL sessions have too); default no limit.
   */
  maxSessionDurationMs?: number
  /**
   * Whether a session goes on once the last token it was used with has expired (the gateway's
   * server.sessionOutlivesToken); default false: it ends then, as a PostgreSQL session does.
   */
  sessionOutlivesToken?: boolean
  version: string
  log?: (level: 'info' | 'warn' | 'error', message: string) => void
  /**
   * Where a line a client can cause on every request goes, counted by kind and source so that a
   * flood of them is summarised (the gateway's src/gateway/log-limits.ts); default `log`.
   */
  logRepeated?: (level: 'info' | 'warn' | 'error', kind: string, source: string, message: string) => void
}

export interface McpHttp {
  /** Serves the request when its path is an MCP path or its metadata; returns false otherwise. */
  handle(req: IncomingMessage, res: ServerResponse): Promise<boolean>
  readonly sessionCount: number
  /**
   * Ends every session whose sign-in `withdrawn` says no longer stands (the IdP stopped publishing
   * the key that signed it), telling the agent `message` at its next request; how many ended.
   */
  endSignedWith(withdrawn: (token: string) => Promise<boolean>, message: string): Promise<number>
  /**
   * After a reload: ends every session that `refused` now refuses (a reload that removed its target,
   * or changed its `allow` so that its owner is no longer let in), telling the agent the message it
   * returns at its next request, and every session whose target `servedAs` no longer matches (its
   * policy or settings changed); how many ended.
   */
  endRefused(refused: (session: {identity: Identity; target: string}) => string | undefined): Promise<number>
  close(): Promise<void>
}

const targetChanged = (target: string) => `dbgate: this MCP session has ended: the settings or policy of target "${target}" changed (a gateway reload) since it started; start a new one`

export const MCP_PATH_PREFIX = '/mcp/'
const METADATA_PREFIX = '/.well-known/oauth-protected-resource'

interface RemoteSession {
  id: string
  subject: string
  /** The identity it opened with; a later token of other grants ends it, so its grants hold throughout. */
  identity: Identity
  /** What the session's pipeline was built from (see `grantsOf`): a later token must match it. */
  grants: string
  target: string
  transport: StreamableHTTPServerTransport
  mcp: DbgateMcp
  lastUsed: number
  openedAt: number
  /** When the latest token a request of this session presented expires (ms since the epoch). */
  signInExpiresAt: number
  /** That token: the sign-in that carries the session, checked again when the IdP withdraws keys. */
  signIn: string
  /** Ends the session at its `sessionDeadline`. */
  deadline?: NodeJS.Timeout
  /** Its requests whose answer has not ended yet. */
  inFlight: number
  /** `servedAs` of its target when it opened. */
  servedAs: string | undefined
  /** The ids of its requests in flight (see `requestIdsOf`). */
  requestIds: RequestIds
}

/**
 * A session's requests in flight, by id: from the POST that carries one until its answer is sent or
 * the agent cancels it. `dispatched` once the transport has handed it to the server; one never
 * handed over (the transport refused its body) is forgotten when its POST ends.
 */
type RequestIds = Map<string | number, {dispatched: boolean}>

/**
 * Requests one session may have in flight at once. An agent runs a few tools in parallel (its
 * statements share four database sessions), but a tool may hold its request for a minute with no
 * database session at all (`approval_status` with `waitSeconds`): without a cap, one signed-in
 * agent held as many sockets as it opened, up to the file limit the gateway's listeners share.
 */
export const MAX_REQUESTS_IN_FLIGHT = 16

/** How many ended sessions' reasons are kept, so that the agent's next request on one learns why. */
const ENDED_REMEMBERED = 1024

export interface SessionLimits {
  maxSessionDurationMs?: number
  sessionOutlivesToken?: boolean
}

/**
 * When a session must end, and the reason the agent is told: at its maximum duration from its
 * opening, or (unless it may outlive its sign-in) when the latest token it was used with expires.
 * Between requests a session holds the agent's database sessions and any statement waiting for a
 * reviewer; neither may outlast the sign-in that backs them, or a statement held for someone whose
 * access has since ended would run when approved. Each request's token, verified and of the same
 * person and grants, carries the session on to that token's expiry.
 */
export function sessionDeadline(s: Pick<RemoteSession, 'openedAt' | 'signInExpiresAt'>, limits: SessionLimits): {at: number; message: string} | undefined {
  const ends: {at: number; message: string}[] = []
  if (limits.maxSessionDurationMs !== undefined) {
    ends.push({
      at: s.openedAt + limits.maxSessionDurationMs,
      message: `dbgate: this MCP session reached the gateway's maximum session duration of ${formatDuration(limits.maxSessionDurationMs)} (server.maxSessionDuration); start a new one`,
    })
  }
  if (!limits.sessionOutlivesToken) {
    ends.push({
      at: s.signInExpiresAt,
      message: 'dbgate: this MCP session ended because the sign-in it was used with expired, and sessions on this gateway end with it (server.sessionOutlivesToken: false); start a new one with a fresh token',
    })
  }
  return ends.sort((a, b) => a.at - b.at)[0]
}

/**
 * The parts of an identity the session's pipeline was built from: its groups decide the rules that
 * match, who sees values in clear (`masking.unmask`) and who may approve; its e-mail and kind are
 * what recordings and reviewers see. A token of the same person that says otherwise (a group
 * removed at the IdP) must not keep using a pipeline built for the old one.
 */
function grantsOf(identity: Identity): string {
  return JSON.stringify([identity.email ?? null, identity.kind, [...new Set(identity.groups)].sort()])
}

const targetNamePattern = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/

/** The resource URL of one target's MCP endpoint, as agents and tokens name it. */
export function mcpResourceUrl(publicOrigin: string, target: string): string {
  return `${publicOrigin.replace(/\/+$/, '')}${MCP_PATH_PREFIX}${target}`
}

/** The RFC 9728 metadata URL for a resource: the well-known path goes between authority and path. */
export function protectedResourceMetadataUrl(publicOrigin: string, target: string): string {
  return `${publicOrigin.replace(/\/+$/, '')}${METADATA_PREFIX}${MCP_PATH_PREFIX}${target}`
}

export function createMcpHttp(opts: McpHttpOptions): McpHttp {
  const log = opts.log ?? (() => {})
  const logRepeated = opts.logRepeated ?? ((level: 'info' | 'warn' | 'error', _kind: string, _source: string, message: string) => log(level, message))
  const sessions = new Map<string, RemoteSession>()
  const maxSessions = opts.maxSessions ?? 200
  const perPerson = opts.maxSessionsPerPerson ?? 16
  const idleMs = opts.idleTimeoutMs ?? 30 * 60_000
  const limits: SessionLimits = {maxSessionDurationMs: opts.maxSessionDurationMs, sessionOutlivesToken: opts.sessionOutlivesToken}
  // Why recently ended sessions ended, for their owner's next request (oldest forgotten first).
  const endedWhy = new Map<string, {subject: string; message: string}>()
  let closed = false

  const sweep = setInterval(() => {
    const now = Date.now()
    for (const s of sessions.values()) {
      if (now - s.lastUsed > idleMs) void end(s, 'idle')
    }
  }, Math.min(idleMs, 60_000))
  sweep.unref()

  // Sessions already leaving the map but still closing (an agent's DELETE, an idle sweep): closing
  // the server waits for them too, since their tunnels may still be writing recordings.
  const ending = new Set<Promise<void>>()
  function end(s: RemoteSession, why: string, tell?: string): Promise<void> {
    if (!sessions.delete(s.id)) return Promise.resolve()
    clearTimeout(s.deadline)
    if (tell) {
      endedWhy.set(s.id, {subject: s.subject, message: tell})
      for (const id of endedWhy.keys()) {
        if (endedWhy.size <= ENDED_REMEMBERED) break
        endedWhy.delete(id)
      }
    }
    log('info', `MCP session ${s.id} on ${s.target} ended (${why})`)
    const done = (async () => {
      await s.transport.close().catch(() => {})
      // The session's database sessions end with the gateway's reason, in their logs too.
      await s.mcp.close(tell ?? `dbgate: this MCP session has ended (${why})`).catch((e: Error) => log('warn', `closing MCP session ${s.id}: ${e.message}`))
    })()
    ending.add(done)
    void done.finally(() => ending.delete(done))
    return done
  }

  /** Arms the session's end at its deadline; true when that deadline has already passed. */
  function scheduleEnd(s: RemoteSession): boolean {
    clearTimeout(s.deadline)
    const due = sessionDeadline(s, limits)
    if (!due) return false
    const wait = due.at - Date.now()
    const ending = () => void end(s, due.message.replace(/^dbgate: this MCP session /, ''), due.message)
    // A deadline that is no number (an `exp` past what a Date holds) is not one to wait for.
    if (!(wait > 0)) {
      ending()
      return true
    }
    // setTimeout cannot wait longer than about 24.8 days; wake then and arm again.
    s.deadline = setTimeout(() => (due.at <= Date.now() ? ending() : scheduleEnd(s)), Math.min(wait, 2 ** 31 - 1))
    s.deadline.unref()
    return false
  }

  const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, {'content-type': 'application/json', 'cache-control': 'no-store', ...headers})
    res.end(JSON.stringify(body))
  }

  /** A JSON-RPC error body, which MCP clients show to the person, with the HTTP status that fits. */
  const rpcError = (res: ServerResponse, status: number, message: string, headers: Record<string, string> = {}) =>
    json(res, status, {jsonrpc: '2.0', error: {code: -32000, message}, id: null}, headers)

  const challenge = (target: string, error?: {code: 'invalid_token' | 'insufficient_scope'; description: string}) => {
    const parts = [`resource_metadata="${protectedResourceMetadataUrl(opts.publicOrigin, target)}"`]
    // RFC 6750 §3: no error attribute when the request simply had no token.
    if (error) parts.push(`error="${error.code}"`, `error_description="${error.description.replace(/["\\]/g, "'")}"`)
    return {'www-authenticate': `Bearer ${parts.join(', ')}`}
  }

  const metadata = (res: ServerResponse, name: string) =>
    json(res, 200, {
      resource: mcpResourceUrl(opts.publicOrigin, name),
      authorization_servers: opts.authorizationServers,
      bearer_methods_supported: ['header'],
      resource_name: `dbgate: ${name}`,
    })

  const readBody = async (req: IncomingMessage): Promise<unknown> => {
    const chunks: Buffer[] = []
    let size = 0
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length
      // The tools take SQL text and a few numbers: a megabyte is far more than any call needs.
      if (size > 1024 * 1024) throw new BodyError(413, 'the request body is over 1 MiB')
      chunks.push(chunk)
    }
    try {
      return JSON.parse(Buffer.concat(chunks).toString('utf8'))
    } catch {
      throw new BodyError(400, 'the request body is not JSON')
    }
  }

  async function serveMcp(req: IncomingMessage, res: ServerResponse, name: string): Promise<void> {
    const origin = req.headers.origin
    if (origin !== undefined && !(opts.allowedOrigins ?? []).includes(origin)) {
      return rpcError(res, 403, `dbgate: requests from the browser origin ${origin} are not allowed (list it in the gateway's MCP allowedOrigins to allow it)`)
    }
    const header = req.headers.authorization ?? ''
    const bearer = /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1]
    if (!bearer) {
      return rpcError(res, 401, `dbgate: sign-in required: send an access token from ${opts.authorizationServers.join(' or ')} as "Authorization: Bearer …"`, challenge(name))
    }
    const address = req.socket.remoteAddress ? `${req.socket.remoteAddress}:${req.socket.remotePort}` : 'unknown'
    const check = await opts.authenticate(bearer, name, {address: `${address} (MCP over HTTPS)`, ...(typeof req.headers['user-agent'] === 'string' ? {agent: req.headers['user-agent']} : {})}).catch(
      (e: Error): BearerCheck => ({ok: false, status: 401, description: `the token could not be verified (${e.message})`}),
    )
    if (!check.ok && check.status === 503) return rpcError(res, 503, `dbgate: ${check.description}`, {'retry-after': '5'})
    // Only someone signed in learns that no target has this name.
    if (!check.ok && check.status === 404) return rpcError(res, 404, `dbgate: ${check.description}`)
    if (!check.ok) {
      const code = check.status === 403 ? 'insufficient_scope' : 'invalid_token'
      // The owner of a session, signed in but no longer let in (a group removed at the IdP, `allow`
      // changed by a reload): the session built for their old grants ends now, and what it held
      // (a statement waiting for a reviewer) with it, rather than at the expiry of their old token.
      const owned = typeof req.headers['mcp-session-id'] === 'string' ? sessions.get(req.headers['mcp-session-id']) : undefined
      if (check.status === 403 && check.identity && owned && owned.subject === check.identity.subject && owned.target === name) {
        await end(owned, 'its owner may no longer use the target', `dbgate: this MCP session has ended: ${identityLabel(check.identity)} may no longer use target "${name}"; start a new one once you may`)
      }
      // A stranger can cause this on every request: the first from an address is logged, repeats are counted.
      const from = req.socket.remoteAddress ?? 'an unknown address'
      logRepeated('warn', `MCP sign-ins refused (${check.reason ?? code})`, from, `MCP: sign-in refused (${check.reason ?? code}) from ${from} for target ${name}`)
      return rpcError(res, check.status, `dbgate: ${check.description}`, challenge(name, {code, description: check.description}))
    }
    // Looked up after the token, as everything below needs it: a reload between the two that
    // removed the target is the only way to miss it here.
    const target = opts.target(name)
    if (!target) return rpcError(res, 404, `dbgate: no MCP endpoint here named "${name}"`)
    keepAliveVerified(res)
    const identity = check.identity
    const subject = identity.subject
    const sessionId = req.headers['mcp-session-id']
    if (typeof sessionId === 'string') {
      const s = sessions.get(sessionId)
      if (!s || s.target !== target.name) {
        // Only its owner learns why it ended; to anyone else it is one more unknown id.
        const ended = endedWhy.get(sessionId)
        return rpcError(res, 404, ended?.subject === subject ? ended.message : 'dbgate: this MCP session has ended or never existed here; start a new one')
      }
      if (s.subject !== subject) {
        logRepeated('warn', "MCP requests refused for another person's session", identityLabel(check.identity), `refused a request for MCP session ${s.id} with another person's token (${identityLabel(check.identity)})`)
        return rpcError(res, 403, 'dbgate: this MCP session belongs to someone else')
      }
      if (s.grants !== grantsOf(check.identity)) {
        // The session's pipeline (rules, masking, recording) was built for the identity as it was;
        // end it rather than serve the new token with the old grants. 404 tells the client to start over.
        log('info', `MCP session ${s.id}: the token's e-mail, kind or groups changed since it started; ending it`)
        await end(s, 'identity changed')
        return rpcError(res, 404, "dbgate: this MCP session has ended: your sign-in's groups (or e-mail) changed since it started; start a new one")
      }
      if (s.servedAs !== opts.servedAs?.(target.name)) {
        // Built for the target as it was served: the agent's next session gets the target as it is.
        log('info', `MCP session ${s.id}: target ${target.name}'s settings or policy changed since it started; ending it`)
        await end(s, 'target changed', targetChanged(target.name))
        return rpcError(res, 404, targetChanged(target.name))
      }
      // This request's token carries the session on to its expiry, within the session's maximum duration.
      if (identity.expiresAt.getTime() >= s.signInExpiresAt) {
        s.signInExpiresAt = identity.expiresAt.getTime()
        s.signIn = bearer
      }
      if (scheduleEnd(s)) return rpcError(res, 404, endedWhy.get(s.id)?.message ?? 'dbgate: this MCP session has ended; start a new one')
      s.lastUsed = Date.now()
      const body = req.method === 'POST' ? await readBody(req) : undefined
      const refusedByMcp = req.headers[REFUSED_BY_MCP_HEADER]
      if (body !== undefined && typeof refusedByMcp === 'string') {
        // Refused by dbgate mcp on the agent's machine (src/mcp/stdio.ts): recorded here, where the
        // session's log is, and never handed to the transport, so nothing of it runs.
        const what = `${refusedReason(refusedByMcp)}, refused by dbgate mcp on the agent's machine before it reached the gateway`
        for (const item of Array.isArray(body) ? body : [body]) await s.mcp.refuseMessage(item, what)
        return json(res, 202, {recorded: true, ran: false})
      }
      const malformed = body === undefined ? undefined : notMessages(body)
      if (malformed) {
        // The SDK answers such a body 400 and runs none of it, recording nothing: a tools/call in it
        // (its params a string, in a batch beside one) is what the agent tried, recorded as refused.
        for (const item of Array.isArray(body) ? body : [body]) await s.mcp.refuseMessage(item, malformed)
        return rpcError(res, 400, `dbgate: this server received ${malformed}; nothing of it ran. Send one JSON-RPC 2.0 message (or a batch of them), such as {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "query", "arguments": {"sql": "select 1"}}}.`)
      }
      const ids = body === undefined ? [] : requestIdsOf(body)
      const reused = reusedId(ids, s.requestIds)
      if (reused) {
        // The transport keeps one response stream per id and the server one cancellation per id: a
        // second request of an id in flight took it over, so the agent's notifications/cancelled no
        // longer reached the first statement, and the first's answer went out on the second's response.
        const what = `${Array.isArray(body) ? 'a batch holding ' : ''}${reused}`
        for (const item of Array.isArray(body) ? body : [body]) await s.mcp.refuseMessage(item, what)
        return rpcError(
          res,
          400,
          `dbgate: this server received ${what}; nothing of it ran. Give each request of a session an id of its own; an id is free again once its request is answered or cancelled (notifications/cancelled).`,
        )
      }
      // Only what holds its response open is capped: a request's answer, the GET event stream. A body
      // of notifications (the agent's notifications/cancelled) is answered at once, and DELETE ends
      // the session: refusing them at the cap left the statements in flight beyond the agent's reach.
      const holdsOpen = req.method === 'GET' || ids.length > 0
      if (holdsOpen && s.inFlight >= MAX_REQUESTS_IN_FLIGHT) {
        return rpcError(res, 429, `dbgate: this MCP session already has ${MAX_REQUESTS_IN_FLIGHT} requests in flight; wait for their answers before sending more`, {'retry-after': '1'})
      }
      // Taken before the transport sees the body: two POSTs of one id read at once cannot both pass.
      const mine = ids.map((id) => {
        const entry = {dispatched: false}
        s.requestIds.set(id, entry)
        return [id, entry] as const
      })
      s.inFlight++
      res.once('close', () => s.inFlight--)
      try {
        await s.transport.handleRequest(req, res, body)
      } finally {
        for (const [id, entry] of mine) if (!entry.dispatched && s.requestIds.get(id) === entry) s.requestIds.delete(id)
      }
      return
    }
    if (req.method !== 'POST') return rpcError(res, 400, 'dbgate: no MCP session: send an initialize request first (POST)')
    const body = await readBody(req)
    if (!isInitializeRequest(body)) return rpcError(res, 400, 'dbgate: no MCP session: the first request must be initialize')
    if (closed) return rpcError(res, 503, 'dbgate: the server is shutting down')
    // One person's own sessions make room first: their least recently used one ends. Theirs under
    // every subject of theirs (the same verified mailbox), or each subject would bring a cap of its own.
    const own = [...sessions.values()].filter((s) => samePerson(s.identity, identity)).sort((a, b) => a.lastUsed - b.lastUsed)
    for (const s of own.slice(0, Math.max(0, own.length - perPerson + 1))) await end(s, `its owner opened more than ${perPerson} sessions`)
    if (sessions.size >= maxSessions) return rpcError(res, 503, `dbgate: too many MCP sessions are open (${maxSessions}); try again later`)
    // The session's database connection is the gateway's own, on a private socket: the agent's address is this one.
    const clientAddress = req.socket.remoteAddress ? `${req.socket.remoteAddress}:${req.socket.remotePort} (MCP over HTTPS)` : 'unknown (MCP over HTTPS)'
    const servedAs = opts.servedAs?.(target.name)
    const requestIds: RequestIds = new Map()
    const mcp = createDbgateMcp({
      target,
      version: opts.version,
      log,
      openEndpoint: (agent) => opts.openEndpoint({identity, target, agent, clientAddress}),
    })
    const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => {
        const now = Date.now()
        const s: RemoteSession = {id, subject, identity, grants: grantsOf(identity), target: target.name, transport, mcp, lastUsed: now, openedAt: now, signInExpiresAt: identity.expiresAt.getTime(), signIn: bearer, inFlight: 0, servedAs, requestIds}
        sessions.set(id, s)
        log('info', `MCP session ${id} on ${target.name} for ${identityLabel(identity)}`)
        scheduleEnd(s)
      },
    })
    transport.onclose = () => {
      const id = transport.sessionId
      const s = id ? sessions.get(id) : undefined
      if (s) void end(s, 'closed by the agent')
    }
    await mcp.server.connect(transport)
    trackRequestIds(transport, requestIds)
    await transport.handleRequest(req, res, body)
  }

  return {
    get sessionCount() {
      return sessions.size
    },
    async endSignedWith(withdrawn, message) {
      let n = 0
      for (const s of [...sessions.values()]) {
        if (!(await withdrawn(s.signIn))) continue
        n++
        await end(s, 'the key its sign-in was signed with was withdrawn', message)
      }
      return n
    },
    async endRefused(refused) {
      let n = 0
      for (const s of [...sessions.values()]) {
        const message = refused({identity: s.identity, target: s.target})
        if (message !== undefined) {
          n++
          await end(s, 'its owner may no longer use its target', message)
          continue
        }
        // A statement the session holds for a reviewer waits on the pipeline of the replaced policy,
        // between the agent's requests: ending it at the next request would leave the reviewer's
        // approval meanwhile to run it under the policy the reload replaced.
        if (s.servedAs === opts.servedAs?.(s.target)) continue
        n++
        await end(s, 'target changed', targetChanged(s.target))
      }
      return n
    },
    async handle(req, res) {
      const pathname = requestPath(req.url)
      // A target that is no URL path (`//[`, `/mcp/%E0`): whoever sent it is told so, before any token.
      if (pathname === undefined) {
        json(res, 400, {error: `dbgate: ${BAD_REQUEST_TARGET}`})
        return true
      }
      const isMeta = pathname.startsWith(`${METADATA_PREFIX}${MCP_PATH_PREFIX}`)
      const path = isMeta ? pathname.slice(METADATA_PREFIX.length) : pathname
      if (!path.startsWith(MCP_PATH_PREFIX)) return false
      const name = decodeURIComponent(path.slice(MCP_PATH_PREFIX.length).replace(/\/+$/, ''))
      try {
        // No target can have a name outside the pattern. For one inside it, whoever has not signed
        // in is answered the same whether it exists or not: the set of target names is not theirs
        // to list (metadata for any such name, and 401 until a token is verified).
        if (!targetNamePattern.test(name)) {
          json(res, 404, {error: `dbgate: no MCP endpoint here named "${name}"`})
          return true
        }
        if (isMeta) {
          if (req.method !== 'GET') json(res, 405, {error: 'use GET'}, {allow: 'GET'})
          else metadata(res, name)
          return true
        }
        if (req.method !== 'POST' && req.method !== 'GET' && req.method !== 'DELETE') {
          rpcError(res, 405, 'dbgate: MCP over HTTP uses POST, GET and DELETE', {allow: 'POST, GET, DELETE'})
          return true
        }
        await serveMcp(req, res, name)
      } catch (e) {
        if (res.headersSent) res.end()
        // The client went, or its request was too slow and the listener answered and closed it: nobody to tell.
        else if (req.socket.destroyed) return true
        else if (e instanceof BodyError) rpcError(res, e.status, `dbgate: ${e.message}`)
        else {
          log('error', `MCP request failed: ${(e as Error).message}`)
          rpcError(res, 500, 'dbgate: the MCP request failed inside the server; it is logged')
        }
      }
      return true
    },
    async close() {
      closed = true
      clearInterval(sweep)
      await Promise.all([...sessions.values()].map((s) => end(s, 'server closing')))
      await Promise.all([...ending])
    },
  }
}

/**
 * What is wrong with a request body that is not one JSON-RPC message or a batch of them (which the
 * SDK refuses whole), as the agent is told; undefined for a body the SDK takes.
 */
/** What dbgate mcp said was wrong with a call it refused, as it sent it: URI-encoded, at most 1,000 characters kept. */
function refusedReason(header: string): string {
  let text: string
  try {
    text = decodeURIComponent(header)
  } catch {
    text = header
  }
  return text.length > 1000 ? `${text.slice(0, 1000)}…` : text || 'a message it could not take'
}

function notMessages(body: unknown): string | undefined {
  const items = Array.isArray(body) ? body : [body]
  if (items.length === 0) return 'an empty batch'
  if (items.length > MAX_BATCH) return `a batch of ${items.length} messages, past the ${MAX_BATCH} one may hold`
  const bad = items.findIndex((item) => !JSONRPCMessageSchema.safeParse(item).success)
  if (bad < 0) return undefined
  const what = `a message that is not one JSON-RPC 2.0 message MCP takes (${notAMessage(items[bad])})`
  return Array.isArray(body) ? `a batch holding ${what}, as its message ${bad + 1}` : what
}

/** The ids of the requests (messages with a method and an id) in a body the transport takes. */
function requestIdsOf(body: unknown): (string | number)[] {
  const ids: (string | number)[] = []
  for (const item of Array.isArray(body) ? body : [body]) {
    const m = item as {id?: unknown; method?: unknown}
    if (typeof m.method === 'string' && (typeof m.id === 'string' || typeof m.id === 'number')) ids.push(m.id)
  }
  return ids
}

/** What is wrong when a body's requests reuse an id, among themselves or of one in flight; undefined when none does. */
function reusedId(ids: (string | number)[], inFlight: RequestIds): string | undefined {
  const seen = new Set<string | number>()
  for (const id of ids) {
    if (inFlight.has(id)) return `a request with the id ${JSON.stringify(id)}, which a request of this session still in flight has`
    if (seen.has(id)) return `two requests with the id ${JSON.stringify(id)}`
    seen.add(id)
  }
  return undefined
}

/**
 * Keeps `ids` true to what the transport does: a request it hands to the server stays in flight
 * until its answer is sent (even when the agent's response has gone and the answer is dropped), or
 * until the agent cancels it, after which the server never answers it and the id is the agent's again.
 */
function trackRequestIds(transport: StreamableHTTPServerTransport, ids: RequestIds): void {
  const deliver = transport.onmessage
  if (!deliver) throw new Error('the MCP server did not take the transport (no onmessage after connect); requests of one id could not be told apart')
  transport.onmessage = (message, extra) => {
    const m = message as {id?: string | number; method?: string; params?: {requestId?: string | number}}
    if (m.id !== undefined && typeof m.method === 'string') {
      const entry = ids.get(m.id)
      if (entry) entry.dispatched = true
    }
    deliver.call(transport, message, extra)
    // Only a request the server has: one of a POST not yet handed over is out of the cancellation's reach.
    const cancelled = m.method === 'notifications/cancelled' ? m.params?.requestId : undefined
    if (cancelled !== undefined && ids.get(cancelled)?.dispatched) ids.delete(cancelled)
  }
  const send = transport.send.bind(transport)
  transport.send = (message, options) => {
    const answered = message as {id?: string | number; result?: unknown; error?: unknown}
    if (answered.id !== undefined && ('result' in answered || 'error' in answered)) ids.delete(answered.id)
    return send(message, options)
  }
}

class BodyError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message)
  }
}
