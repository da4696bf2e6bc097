import {readFile} from 'node:fs/promises'
import {loadKeyRing} from '../audit/signing.js'
import {openBucket} from '../bucket/index.js'
import {resolvePolicy} from '../policy/published.js'
import {resolveSecret, type SecretContext} from '../config/secrets.js'
import {getTarget} from '../config/targets.js'
import type {LoadedConfig, TargetConfig} from '../config/types.js'
import type {AgentInfo} from '../identity/types.js'
import {bindIdentity, identityApplicationName, tunnelEnding, type BoundIdentity} from './identity.js'
import {buildTunnelHooks, type TunnelHooksContext} from '../pipeline/index.js'
import type {ProxyHooks} from '../proxy/seam.js'
import {Tunnel, type TunnelAddress, type TunnelListen} from '../proxy/tunnel.js'
import {connectUpstream, type UpstreamTarget} from '../proxy/upstream.js'
import {RdsIamNeedsTlsError, rdsIamTokenSource} from './rds-iam.js'
import {serialize} from 'pg-protocol'
import {formatDuration} from '../util/duration.js'
import {describeTargetFailure} from './target-errors.js'
import {policyCacheDir} from '../util/paths.js'
import {requireTrustedConfig, requireTrustedTarget} from '../config/trust.js'
import {agentMessageLimit} from '../mcp/endpoint.js'

export interface ListenRequest {
  /** Loopback address to bind; default 127.0.0.1. */
  host?: string
  /** 0 or undefined picks a free port. */
  port?: number
  /** A directory (or full `.s.PGSQL.N` path) for a unix socket instead of TCP. */
  socket?: string
  /** Allow a non-loopback `host`. */
  force?: boolean
}

export interface OpenTunnelOptions {
  loaded: LoadedConfig
  targetName: string
  listen?: ListenRequest
  /**
   * Built once the identity is known, so policy, masking and recording can depend on it. The
   * default is dbgate's full pipeline (`buildTunnelHooks`); tests may add to it.
   */
  hooks?: (ctx: TunnelHooksContext) => Promise<ProxyHooks>
  log?: (level: 'info' | 'warn' | 'error', message: string) => void
  secrets?: SecretContext
  env?: NodeJS.ProcessEnv
  /** Run the local file's policy even where the bucket has a published one (recorded). */
  localPolicy?: boolean
  /** Where held statements are announced (default: warnings in `log`). */
  announce?: (message: string) => void
  /** Told what the tunnel is waiting for while it dials the target, for a progress line. */
  progress?: (message: string) => void
  /** The tunnel serves this AI agent alone (`dbgate mcp`): see `TunnelHooksContext.agent`. */
  agent?: AgentInfo
}

/** What a client needs to use the tunnel, in the shapes people and programs want it. */
export interface ConnectionInfo {
  url: string
  host: string
  port: number
  user: string
  database: string
  password: string
  /** The unix socket file, when listening on one. */
  socket?: string
  /** A ready-to-paste psql command line. */
  psql: string
  /** libpq variables (and DATABASE_URL) for a child process. */
  env: Record<string, string>
}

export interface OpenedTunnel {
  tunnel: Tunnel
  target: TargetConfig
  info: ConnectionInfo
  /** The verified identity the tunnel runs as, when the configuration has an identity section. */
  identity?: BoundIdentity
  /** Resolves when the tunnel has closed, for any reason. */
  closed: Promise<void>
  close(graceMs?: number, message?: string): Promise<void>
}

/**
 * Logs into the target once before listening, so a wrong host, port or password is reported now,
 * naming the setting to fix, rather than to the first client that connects.
 */
async function checkTarget(upstream: UpstreamTarget): Promise<void> {
  const session = await connectUpstream(upstream, {application_name: 'dbgate connect (checking the target)'})
  session.socket.end(serialize.end())
}

/**
 * Turns a configured target into what the tunnel dials, resolving the password source now, or
 * giving a function that makes an RDS IAM token for each upstream connection.
 */
export async function upstreamTargetOf(target: TargetConfig, secrets: SecretContext = {}): Promise<UpstreamTarget> {
  const password = target.password
    ? await resolveSecret(target.password, {target: target.name, keyPath: `targets.${target.name}.password`, ...secrets})
    : undefined
  const tlsCa = target.tlsCa ? await readFile(target.tlsCa, 'utf8') : undefined
  const at = {host: target.host, port: target.port, database: target.database, user: target.user, tls: target.tls, tlsCa, connectTimeoutMs: target.connectTimeoutMs}
  if (target.rdsIam) {
    // The schema refuses this already; checked again for targets built elsewhere (a gateway's config).
    if (target.tls !== 'require' && target.tls !== 'verify-full') {
      throw new RdsIamNeedsTlsError(target.name, target.tls)
    }
    return {...at, password: rdsIamTokenSource(at, target.rdsIam)}
  }
  return {...at, password}
}

function listenOf(req: ListenRequest = {}): TunnelListen {
  if (req.socket) return {kind: 'unix', path: req.socket, port: req.port || undefined}
  return {kind: 'tcp', host: req.host ?? '127.0.0.1', port: req.port ?? 0, allowNonLoopback: req.force}
}

const shellQuote = (s: string): string => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`)

export function connectionInfo(address: TunnelAddress, secret: string, target: TargetConfig): ConnectionInfo {
  const user = target.user
  const database = target.database
  const urlWith = (auth: string) =>
    address.socketPath
      ? `postgresql://${auth}@/${encodeURIComponent(database)}?host=${encodeURIComponent(address.pgHost)}&port=${address.port}`
      : `postgresql://${auth}@${address.host.includes(':') ? `[${address.host}]` : address.host}:${address.port}/${encodeURIComponent(database)}`
  const url = urlWith(`${encodeURIComponent(user)}:${encodeURIComponent(secret)}`)
  return {
    url,
    host: address.pgHost,
    port: address.port,
    user,
    database,
    password: secret,
    socket: address.socketPath,
    // The secret goes in the environment the shell sets, not in psql's arguments: every local user
    // reads those (ps, /proc/<pid>/cmdline), and the secret is all that keeps them out of the tunnel.
    psql: `PGPASSWORD=${shellQuote(secret)} psql ${shellQuote(urlWith(encodeURIComponent(user)))}`,
    env: {
      PGHOST: address.pgHost,
      PGPORT: String(address.port),
      PGUSER: user,
      PGPASSWORD: secret,
      PGDATABASE: database,
      // The tunnel speaks plain text on loopback; a libpq default of sslmode=require would fail.
      PGSSLMODE: 'disable',
      DATABASE_URL: url,
    },
  }
}

/**
 * Opens a tunnel to one configured target and returns how to reach it. When the configuration
 * has an identity section, the tunnel only opens for a verified identity the target allows, and
 * ends with a clear message when that identity can no longer be renewed.
 */
export async function openTunnel(opts: OpenTunnelOptions): Promise<OpenedTunnel> {
  // A gateway's client has no targets: sessions go to the gateway, which enforces everything.
  // Its client code (and the OIDC it needs) loads only for such a configuration.
  const gateway = opts.loaded.config.gateway
  if (gateway) {
    // The person's sign-in goes to that gateway as the password: only where they chose it.
    await requireTrustedConfig(opts.loaded, 'gateway', opts.env ?? process.env)
    return (await import('../gateway/client.js')).openViaGateway(opts, gateway)
  }
  const configured = getTarget(opts.loaded.config, opts.targetName)
  const log = opts.log ?? (() => {})
  const env = opts.env ?? process.env
  // The person's own password (keychain, environment, files, AWS) goes to that host: only where they chose it.
  await requireTrustedTarget(opts.loaded, configured, env)
  const bucket = openBucket(opts.loaded.config.bucket)
  const effective = await resolvePolicy({
    bucket,
    loadKeys: async () => (await loadKeyRing(bucket)).keys,
    target: configured,
    localPolicy: opts.localPolicy,
    cacheDir: policyCacheDir(env),
  })
  if (effective.notice) log('warn', effective.notice)
  const target = effective.target
  let tunnel: Tunnel | undefined
  const {closed, close} = tunnelEnding(() => ({tunnel, identity}))
  const identity = await bindIdentity(opts.loaded, target, {
    env: opts.env,
    warn: (m) => log('warn', m),
    onLost: (error) => {
      log('error', `${error.message} Closing the tunnel.`)
      void close(0, `dbgate: your sign-in could not be renewed (${error.message}); run \`dbgate login\` and reconnect`)
    },
  })
  let hooks: ProxyHooks | undefined
  try {
    const upstream = await upstreamTargetOf(target, {env: opts.env, ...opts.secrets})
    opts.progress?.(`Connecting to ${target.name} (${target.host}:${target.port}/${target.database}; gives up after ${formatDuration(target.connectTimeoutMs)}) …`)
    await checkTarget(upstream).catch((error: unknown) => {
      throw describeTargetFailure(target, error, opts.loaded.path)
    })
    hooks = await (opts.hooks ?? buildTunnelHooks)({
      config: opts.loaded.config,
      identity: identity?.current(),
      target,
      env: opts.env,
      log,
      announce: opts.announce,
      policy: {hash: effective.hash, version: effective.version},
      upstream,
      agent: opts.agent,
    })
    tunnel = new Tunnel({
      target: upstream,
      listen: listenOf(opts.listen),
      hooks,
      maxMessageSize: opts.agent ? agentMessageLimit(target) : target.tunnel.maxMessageSize,
      limits: {
        authTimeoutMs: target.tunnel.authTimeoutMs,
        maxClientConnections: target.tunnel.maxClientConnections,
        maxUpstreamSessions: target.tunnel.maxUpstreamSessions,
        upstreamQueueTimeoutMs: target.tunnel.upstreamQueueTimeoutMs,
      },
      applicationName: (app) => identityApplicationName(identity?.current(), app),
      log,
    })
    const address = await tunnel.listen()
    return {tunnel, target, identity, info: connectionInfo(address, tunnel.secret, target), closed, close}
  } catch (error) {
    identity?.stop()
    await hooks?.dispose?.()
    throw error
  }
}
