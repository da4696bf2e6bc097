/**
 * The client side of a gateway: `dbgate connect <target>` when the configuration names a gateway.
 * The local listener is the usual one (loopback, the per-tunnel secret, any PostgreSQL client);
 * each session is carried over TLS (verify-full against the configured CA) to the gateway, with the
 * person's SSO token as the password, renewed as the local identity binding renews it.
 *
 * The local process enforces nothing that matters: it holds no database credentials and runs no
 * policy, masking or recording. The gateway does all of it, for this person, on its side.
 */
import type {X509Certificate} from 'node:crypto'
import {readFile} from 'node:fs/promises'
import https from 'node:https'
import {DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_APPROVAL_EXPIRY_MS} from '../config/schema.js'
import type {GatewayClientConfig, LoadedConfig, TargetConfig} from '../config/types.js'
import {requireTrustedConfig} from '../config/trust.js'
import {bindIdentity, tunnelEnding} from '../connect/identity.js'
import {connectionInfo, type OpenedTunnel, type OpenTunnelOptions} from '../connect/open.js'
import {identityConfigFrom} from '../identity/cli.js'
import {getIdentity} from '../identity/session.js'
import {identityLabel} from '../identity/types.js'
import {Tunnel} from '../proxy/tunnel.js'
import {connectUpstream, presentedCertificate, UpstreamError, type UpstreamTarget} from '../proxy/upstream.js'
import {serialize} from 'pg-protocol'
import type {TargetsResponse} from './api.js'

/** The gateway turned the person away, or could not be reached; its own words, and what to do. */
export class GatewayRefusedError extends Error {
  override name = 'GatewayRefusedError'
  readonly code: string
  constructor(
    message: string,
    readonly nextStep: string,
    readonly sqlstate?: string,
  ) {
    super(message)
    this.code = sqlstate?.startsWith('28') ? 'GATEWAY_SIGN_IN_REFUSED' : 'GATEWAY_UNAVAILABLE'
  }
}

export class GatewayClientError extends Error {
  override name = 'GatewayClientError'
  readonly code = 'GATEWAY_CLIENT_CONFIG'
  constructor(
    message: string,
    readonly nextStep: string,
  ) {
    super(message)
  }
}

const at = (gw: GatewayClientConfig) => `${gw.address.host}:${gw.address.port}`

/**
 * What the client knows of a target served by a gateway: its name and where the gateway is. Its
 * policy, masking and credentials live on the gateway; nothing here is enforced.
 */
function gatewayTarget(name: string, gw: GatewayClientConfig, user: string, loaded: LoadedConfig): TargetConfig {
  return {
    name,
    host: gw.address.host,
    port: gw.address.port,
    database: name,
    user,
    tls: 'verify-full',
    ...(gw.ca ? {tlsCa: gw.ca} : {}),
    connectTimeoutMs: DEFAULT_CONNECT_TIMEOUT_MS,
    reviewers: [],
    policy: 'default',
    rules: [],
    masking: {unmask: [], mask: [], unmaskColumns: [], strategies: {}, onUntraceable: 'mask'},
    approvals: {expiryMs: DEFAULT_APPROVAL_EXPIRY_MS, windows: false},
    tunnel: loaded.config.tunnel,
  }
}

/** The gateway's refusal as the person reads it in the terminal. */
function describeGatewayFailure(gw: GatewayClientConfig, target: string, error: unknown): GatewayRefusedError {
  if (error instanceof UpstreamError && error.upstream) {
    const refusal = error.upstream
    const message = `the gateway ${at(gw)} refused ${target}: ${refusal.message.replace(/^dbgate: /, '')}`
    return new GatewayRefusedError(message, refusal.hint ?? 'Run `dbgate targets` to see the targets you may use.', refusal.code)
  }
  const detail = (error as Error).message
  return new GatewayRefusedError(
    `could not reach the gateway ${at(gw)}: ${detail}`,
    /certificate|self.signed|verify/i.test(detail) ? "Check gateway.ca in dbgate.yaml: it must name the CA that signed the gateway's certificate." : 'Check gateway.address in dbgate.yaml and that the gateway is running.',
  )
}

/** `dbgate connect` through the gateway the configuration names. */
export async function openViaGateway(opts: OpenTunnelOptions, gw: GatewayClientConfig): Promise<OpenedTunnel> {
  // An agent's tools run on the gateway's remote MCP endpoint (src/mcp/gateway-bridge.ts), where the
  // gateway knows the agent; a plain tunnel to the gateway would record the agent as the person.
  if (opts.agent) throw new GatewayClientError('an agent session cannot go through a tunnel to the gateway', '`dbgate mcp` reaches the gateway\'s remote MCP endpoint instead; update dbgate if this appears.')
  if (!opts.loaded.config.identity) {
    throw new GatewayClientError(`${opts.loaded.path} names a gateway but has no identity section: the gateway signs you in with your SSO token`, 'add identity: {issuer: https://login.example.com, clientId: dbgate-cli} (ask the gateway administrators for the values)')
  }
  const log = opts.log ?? (() => {})
  const ca = gw.ca ? await readFile(gw.ca, 'utf8') : undefined
  let tunnel: Tunnel | undefined
  const {closed, close} = tunnelEnding(() => ({tunnel, identity}))
  // The gateway decides who may use the target; locally the identity is only kept fresh.
  const identity = (await bindIdentity(opts.loaded, {}, {
    env: opts.env,
    warn: (m) => log('warn', m),
    onLost: (error) => {
      log('error', `${error.message} Closing the tunnel.`)
      void close(0, `dbgate: your sign-in could not be renewed (${error.message}); run \`dbgate login\` and reconnect`)
    },
  }))!
  try {
    const user = identityLabel(identity.current())
    const upstream: UpstreamTarget = {
      host: gw.address.host,
      port: gw.address.port,
      database: opts.targetName,
      user,
      // Read at each dial: the token the binding holds now, never one that has expired meanwhile.
      get password() {
        return identity.token()
      },
      tls: 'verify-full',
      ...(ca ? {tlsCa: ca} : {}),
      connectTimeoutMs: DEFAULT_CONNECT_TIMEOUT_MS,
    }
    opts.progress?.(`Signing in to ${opts.targetName} at the gateway ${at(gw)} …`)
    const probe = await connectUpstream(upstream, {application_name: 'dbgate connect (checking the gateway)'}).catch((error: unknown) => {
      throw describeGatewayFailure(gw, opts.targetName, error)
    })
    probe.socket.end(serialize.end())
    const target = gatewayTarget(opts.targetName, gw, user, opts.loaded)
    tunnel = new Tunnel({
      target: upstream,
      listen: opts.listen?.socket ? {kind: 'unix', path: opts.listen.socket, port: opts.listen.port || undefined} : {kind: 'tcp', host: opts.listen?.host ?? '127.0.0.1', port: opts.listen?.port ?? 0, allowNonLoopback: opts.listen?.force},
      // Nothing is enforced here: the gateway checks the startup, every statement and the settings.
      hooks: {},
      assumedSettings: [],
      maxMessageSize: target.tunnel.maxMessageSize,
      limits: {authTimeoutMs: target.tunnel.authTimeoutMs, maxClientConnections: target.tunnel.maxClientConnections, maxUpstreamSessions: target.tunnel.maxUpstreamSessions, upstreamQueueTimeoutMs: target.tunnel.upstreamQueueTimeoutMs},
      applicationName: (app) => app ?? 'dbgate',
      log,
    })
    const address = await tunnel.listen()
    return {tunnel, target, identity, info: connectionInfo(address, tunnel.secret, target), closed, close}
  } catch (error) {
    identity.stop()
    throw error
  }
}

/**
 * The certificate the gateway presents on its PostgreSQL port, verified as `dbgate connect` verifies
 * it (verify-full against gateway.ca): reviewers check the signatures of the approval requests it files against it
 * (src/approvals/gateway-signature.ts).
 */
export async function gatewayCertificate(gw: GatewayClientConfig): Promise<X509Certificate> {
  const ca = gw.ca ? await readFile(gw.ca, 'utf8') : undefined
  const target: UpstreamTarget = {host: gw.address.host, port: gw.address.port, database: '', user: '', tls: 'verify-full', ...(ca ? {tlsCa: ca} : {}), connectTimeoutMs: DEFAULT_CONNECT_TIMEOUT_MS}
  return presentedCertificate(target).catch((error: Error) => {
    throw new GatewayRefusedError(
      `could not reach the gateway ${at(gw)} to check which requests it filed: ${error.message}`,
      /certificate|self.signed|verify/i.test(error.message) ? "Check gateway.ca in dbgate.yaml: it must name the CA that signed the gateway's certificate." : 'Check gateway.address in dbgate.yaml and that the gateway is running.',
    )
  })
}

/** `dbgate targets` of a gateway's client: the targets the gateway lets this identity use. */
export async function listGatewayTargets(loaded: LoadedConfig, gw: GatewayClientConfig, env: NodeJS.ProcessEnv = process.env): Promise<TargetsResponse> {
  await requireTrustedConfig(loaded, 'gateway', env)
  const config = await identityConfigFrom(loaded, env)
  const session = await getIdentity(config, {env})
  const ca = gw.ca ? await readFile(gw.ca, 'utf8') : undefined
  const where = `https://${gw.api.host}:${gw.api.port}/v1/targets`
  const {status, body} = await new Promise<{status: number; body: string}>((resolve, reject) => {
    const req = https.request(
      {host: gw.api.host, port: gw.api.port, path: '/v1/targets', method: 'GET', ...(ca ? {ca} : {}), servername: gw.api.host.match(/^[\d.]+$|:/) ? undefined : gw.api.host, headers: {authorization: `Bearer ${session.token}`, accept: 'application/json'}, timeout: DEFAULT_CONNECT_TIMEOUT_MS},
      (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (d: string) => (text += d))
        res.on('end', () => resolve({status: res.statusCode ?? 0, body: text}))
      },
    )
    req.on('timeout', () => req.destroy(new Error(`no answer within ${DEFAULT_CONNECT_TIMEOUT_MS / 1000} s`)))
    req.on('error', reject)
    req.end()
  }).catch((error: Error) => {
    throw new GatewayRefusedError(`could not reach the gateway's API at ${where}: ${error.message}`, 'Check gateway.api (default: the gateway host, port 8443) and gateway.ca in dbgate.yaml.')
  })
  let parsed: (TargetsResponse & {message?: string; hint?: string}) | undefined
  try {
    parsed = JSON.parse(body)
  } catch {
    parsed = undefined
  }
  if (status !== 200 || !parsed || !Array.isArray(parsed.targets)) {
    throw new GatewayRefusedError(`the gateway's API at ${where} answered ${status}${parsed?.message ? `: ${parsed.message}` : ''}`, parsed?.hint ?? 'Run `dbgate login`, then try again.', status === 401 ? '28P01' : undefined)
  }
  return {identity: parsed.identity, targets: parsed.targets}
}
