/**
 * Remote MCP on the gateway (`server.mcp`): the MCP tools over Streamable HTTP on the API listener
 * (src/mcp/http.ts), for agent platforms that cannot start `dbgate mcp` themselves.
 *
 * The bearer token is checked exactly as a PostgreSQL sign-in's password is (sign-in.ts: signature,
 * issuer, audience, expiry, then the target's `allow`). The tools' SQL then runs through the same
 * pipeline as every gateway session, built for this identity and this agent (so `client: mcp`
 * rules, read-only mode and agent recording apply), behind an in-process tunnel on a private unix
 * socket whose secret never leaves the process. The agent's token never reaches the database.
 */
import type {RefusedSignIns} from './refused-sign-ins.js'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import type {DbgateConfig, GatewayMcpConfig, TargetConfig} from '../config/types.js'
import {buildTunnelHooks} from '../pipeline/index.js'
import type {GatewaySignature} from '../approvals/types.js'
import type {UnsignedRequest} from '../approvals/gateway-signature.js'
import {identityApplicationName} from '../connect/identity.js'
import {identityLabel} from '../identity/types.js'
import {dbgateVersion} from '../connect/recording.js'
import type {IdentityConfig} from '../identity/config.js'
import {createMcpHttp, type BearerCheck, type McpHttp, type OpenRemoteEndpoint} from '../mcp/http.js'
import {agentMessageLimit, type SqlEndpoint} from '../mcp/endpoint.js'
import type {ProxyHooks} from '../proxy/seam.js'
import {Tunnel} from '../proxy/tunnel.js'
import type {UpstreamGate} from '../proxy/upstream-gate.js'
import {personBoundGate, personKeys, type CountedSlots} from './session-caps.js'
import type {UpstreamTarget} from '../proxy/upstream.js'
import type {GatewayObserver} from './observer.js'
import {pickTarget, verifySignIn} from './sign-in.js'
import {targetPrint} from './target-print.js'
import type {RepeatLimitedLog} from './log-limits.js'

export interface GatewayMcpOptions {
  settings: GatewayMcpConfig
  /**
   * server.maxSessionDuration and server.sessionOutlivesToken: an MCP session ends as a PostgreSQL
   * session on the gateway does, at the former and (unless the latter) when its sign-in expires.
   */
  sessionLimits: {maxSessionDurationMs: number; sessionOutlivesToken: boolean}
  config: DbgateConfig
  identity: IdentityConfig
  /** The targets the gateway serves, as resolved at start (published policy applied). */
  targets: () => Record<string, TargetConfig>
  /** A served target as served now: its settings, upstream, policy, and the gate counting its upstream sessions (`tunnel.maxUpstreamSessions`). */
  served(name: string): {config: TargetConfig; upstream: UpstreamTarget; gate: UpstreamGate; policy: {hash: string; version: string}} | undefined
  /**
   * Database sessions per person (server.maxSessionsPerPerson), shared with the PostgreSQL listener:
   * an MCP session's database sessions take from the same share as the person's others.
   */
  sessionsPerPerson: CountedSlots
  /** Whether the IdP's signing keys are loaded. */
  ready: () => boolean
  env: NodeJS.ProcessEnv
  observer?: GatewayObserver
  /** Wraps a session's hooks so the gateway's metrics count them like any other session's. */
  observe: (hooks: ProxyHooks, target: string) => ProxyHooks
  /** Signs the approval requests it files, as for the gateway's other sessions (src/approvals/gateway-signature.ts). */
  signApprovalRequest?: (request: UnsignedRequest) => GatewaySignature
  now?: () => Date
  log: (level: 'info' | 'warn' | 'error', message: string) => void
  /** Where lines a client can cause on every request go, summarised when they repeat. */
  repeats?: RepeatLimitedLog
  /** Records the sign-ins refused to someone whose token verified (refused-sign-ins.ts). */
  refusedSignIns?: RefusedSignIns
}

export function startGatewayMcp(opts: GatewayMcpOptions): McpHttp {
  const authenticate = async (token: string, targetName: string, request: {address: string; agent?: string}): Promise<BearerCheck> => {
    if (!opts.ready()) return {ok: false, status: 503, description: "the gateway has not loaded the identity provider's signing keys yet; try again shortly"}
    const verified = await verifySignIn(opts.identity, token, opts.now)
    if (!verified.ok) {
      opts.observer?.signInFailed(verified.refusal.reason)
      return {ok: false, status: 401, reason: verified.refusal.reason, description: `${verified.refusal.error.message.replace(/^dbgate: /, '')}${verified.refusal.error.hint ? ` ${verified.refusal.error.hint}` : ''}`}
    }
    const picked = pickTarget(opts.targets(), targetName, verified.identity)
    if (!picked.ok) {
      opts.observer?.signInFailed(picked.refusal.reason)
      opts.refusedSignIns?.record({
        identity: verified.identity,
        target: picked.refusal.reason === 'unknown-target' ? undefined : targetName,
        database: targetName,
        client: {...(request.agent !== undefined ? {application: request.agent} : {}), address: request.address},
        reason: picked.refusal.reason,
        message: picked.refusal.error.message.replace(/^dbgate: /, ''),
      })
      const status = picked.refusal.reason === 'not-allowed' ? 403 : picked.refusal.reason === 'unknown-target' ? 404 : 401
      return {ok: false, status, reason: picked.refusal.reason, ...(status === 403 ? {identity: verified.identity} : {}), description: `${picked.refusal.error.message.replace(/^dbgate: /, '')}${picked.refusal.error.hint ? ` ${picked.refusal.error.hint}` : ''}`}
    }
    return {ok: true, identity: verified.identity}
  }

  const openEndpoint = async ({identity, target: atStart, agent, clientAddress}: OpenRemoteEndpoint): Promise<SqlEndpoint> => {
    const served = opts.served(atStart.name)
    // The target as served now, whose policy `served` carries: a reload since the MCP session began
    // must not pair the new policy's hash, recorded with the session, with the old settings.
    if (!served) throw new Error(`the gateway no longer serves target ${atStart.name}`)
    // Each database session is let in as a sign-in is: a reload since the MCP session began may have
    // taken its owner's access away, and the session it ended then may have been opening meanwhile.
    const allowed = pickTarget(opts.targets(), atStart.name, identity)
    if (!allowed.ok) throw new Error(allowed.refusal.error.message.replace(/^dbgate: /, ''))
    const target = served.config
    const hooks = await buildTunnelHooks({config: opts.config, target, identity, env: opts.env, log: opts.log, policy: served.policy, upstream: served.upstream, agent, signApprovalRequest: opts.signApprovalRequest})
    const dir = await mkdtemp(path.join(tmpdir(), 'dbgate-gateway-mcp-'))
    const tunnel = new Tunnel({
      target: served.upstream,
      listen: {kind: 'unix', path: dir},
      hooks: opts.observe(hooks, target.name),
      maxMessageSize: agentMessageLimit(target),
      limits: {authTimeoutMs: target.tunnel.authTimeoutMs, maxClientConnections: 4, upstreamQueueTimeoutMs: target.tunnel.upstreamQueueTimeoutMs},
      // The target's budget of database sessions is the gateway's, shared with every other
      // session on it: an agent's MCP sessions (up to server.mcp.maxSessions) draw from it too.
      upstreamGate: personBoundGate(served.gate, opts.sessionsPerPerson, {keys: personKeys(identity), label: identityLabel(identity)}),
      applicationName: (app) => identityApplicationName(identity, app),
      clientAddress,
      log: opts.log,
    })
    let address
    try {
      address = await tunnel.listen()
    } catch (error) {
      await hooks.dispose?.()
      await rm(dir, {recursive: true, force: true})
      throw error
    }
    let resolveClosed!: () => void
    const closed = new Promise<void>((resolve) => (resolveClosed = resolve))
    return {
      clientConfig: () => ({host: address.pgHost, port: address.port, user: served.upstream.user, password: tunnel.secret, database: served.upstream.database, ssl: false}),
      identity: () => identity,
      record: (key, type, payload) => tunnel.recordFor(key, type, payload),
      endSessions: (message) => tunnel.endSessions(message),
      closed,
      close: async () => {
        await tunnel.close(1000)
        await rm(dir, {recursive: true, force: true})
        resolveClosed()
      },
    }
  }

  return createMcpHttp({
    publicOrigin: opts.settings.publicUrl,
    authorizationServers: [opts.identity.issuer],
    // A name from the URL: only the targets' own keys, never what every object inherits (`constructor`).
    target: (name) => {
      const targets = opts.targets()
      return Object.hasOwn(targets, name) ? targets[name] : undefined
    },
    authenticate,
    openEndpoint,
    // A reload gives a target new settings or a new policy: the MCP sessions built on the old end.
    servedAs: (name) => {
      const served = opts.served(name)
      return served ? targetPrint(served) : undefined
    },
    allowedOrigins: opts.settings.allowedOrigins,
    maxSessions: opts.settings.maxSessions,
    maxSessionsPerPerson: opts.settings.maxSessionsPerPerson,
    maxSessionDurationMs: opts.sessionLimits.maxSessionDurationMs,
    sessionOutlivesToken: opts.sessionLimits.sessionOutlivesToken,
    version: dbgateVersion(),
    log: opts.log,
    ...(opts.repeats ? {logRepeated: opts.repeats.write.bind(opts.repeats)} : {}),
  })
}
