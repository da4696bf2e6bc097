/**
 * `dbgate gateway`: the whole pipeline as a shared server near the databases. It holds the targets'
 * credentials, verifies each person's SSO token (sent as the password, over TLS), runs policy,
 * approvals, masking and recording per (target, identity), and signs the recordings with its own key.
 */
import {createPrivateKey, X509Certificate, type KeyObject} from 'node:crypto'
import {readFile} from 'node:fs/promises'
import {join} from 'node:path'
import tls from 'node:tls'
import {Shipper} from '../audit/shipper.js'
import {Recorder, writtenBytesInProcess} from '../audit/recorder.js'
import {dbgateVersion} from '../connect/recording.js'
import {RefusedSignIns} from './refused-sign-ins.js'
import {defaultSpoolDir} from '../audit/spool.js'
import {loadOrCreateInstallationKey, loadKeyRing, prepareGatewayKeyDir, publishKey, type InstallationKey} from '../audit/signing.js'
import {openBucket} from '../bucket/index.js'
import {resolvePolicy} from '../policy/published.js'
import {resolveSecret} from '../config/secrets.js'
import type {GatewayServerConfig, LoadedConfig, TargetConfig} from '../config/types.js'
import {buildTunnelHooks} from '../pipeline/index.js'
import {identityApplicationName} from '../connect/identity.js'
import {upstreamTargetOf} from '../connect/open.js'
import type {IdentityConfig} from '../identity/config.js'
import {identityLabel, type Identity} from '../identity/types.js'
import {canonicalToken, followPublishedKeys, loadSigningKeys, publishedKeys, signedByPublishedKey} from '../identity/verify.js'
import type {ProxyHooks, StatementEvent} from '../proxy/seam.js'
import type {PgNoticeFields} from '../wire/fields.js'
import type {TokenAuthRequest, TokenAuthResult} from '../proxy/connection.js'
import {UpstreamGate} from '../proxy/upstream-gate.js'
import type {UpstreamTarget} from '../proxy/upstream.js'
import {formatDuration} from '../config/units.js'
import {keyDir, userDir} from '../util/paths.js'
import {startGatewayApi, type GatewayApi} from './api.js'
import type {GatewayGauges, GatewayObserver, ReadinessCheck, StatementDecision} from './observer.js'
import {bucketCheck, spoolBacklogBytes, spoolCheck, upstreamChecks} from './health.js'
import {cachedFor} from '../util/cached-for.js'
import {loadConfig} from '../config/load.js'
import {listRequests} from '../approvals/store.js'
import {signRequest, type UnsignedRequest} from '../approvals/gateway-signature.js'
import {shipPending} from '../audit/shipper.js'
import type {McpHttp} from '../mcp/http.js'
import {PipelineCache, type PipelineLease} from './pipelines.js'
import {GatewayServer, type GatewayConnection, type GatewayServerOptions} from './server.js'
import {CountedSlots, personKeys} from './session-caps.js'
import {addressOf, quoteUntrusted, RepeatLimitedLog, type RepeatLogOptions} from './log-limits.js'
import {pickTarget, userMismatch, verifySignIn, type SignInRefusal} from './sign-in.js'
import {changedUntilRestart} from './reload-scope.js'
import {PeerCancels} from './peer-cancels.js'
import {targetPrint} from './target-print.js'

export class GatewayConfigError extends Error {
  override name = 'GatewayConfigError'
  constructor(
    message: string,
    readonly fix: string,
  ) {
    super(message)
  }
}

export interface StartGatewayOptions {
  loaded: LoadedConfig
  env?: NodeJS.ProcessEnv
  observer?: GatewayObserver
  log?: (level: 'info' | 'warn' | 'error', message: string) => void
  /** How often the gateway retries fetching the IdP's keys until it has them (default 5 s). */
  idpRetryMs?: number
  /** Current time for token checks; tests move it. */
  now?: () => Date
  /** Reads the configuration again for a reload (SIGHUP); default: the file `loaded` came from. */
  reloadConfig?: () => Promise<LoadedConfig>
  /** A `--workers` worker: shares the listening port, and hands other workers' cancel keys on. */
  worker?: {cancelElsewhere: NonNullable<GatewayServerOptions['cancelElsewhere']>}
  /** How the lines a stranger can cause per attempt are summarised (src/gateway/log-limits.ts); tests set the clock or interval. */
  logRepeats?: RepeatLogOptions
  /** How often the IdP's keys are fetched to end the sessions of a key it withdrew (default 60 s). */
  keyCheckMs?: number
}

export interface RunningGateway {
  address: {host: string; port: number}
  api?: {host: string; port: number}
  /** The key that signs this gateway's recordings (published as `signer: {kind: gateway}`). */
  signingKeyId: string
  /** Ready to serve: the IdP's keys are loaded. */
  readonly ready: boolean
  readiness(): ReadinessCheck[]
  /** Resolves once the IdP's keys are loaded (the gateway becomes ready). */
  whenReady(): Promise<void>
  sessionCount: number
  /** Pipelines alive (per target and identity). */
  pipelineCount: number
  /** Re-reads the certificate and key; new connections use them, live ones keep theirs. */
  reloadTls(): Promise<void>
  /**
   * SIGHUP: reads the configuration, the targets' policies (published or local) and the TLS files
   * again. New sessions get them; open sessions whose target it changed, or whose access it took
   * away, end after their statement in flight.
   * All or nothing: on any error it throws and changes nothing.
   */
  reload(): Promise<{targets: {name: string; policyVersion: string; policyHash: string}[]}>
  /** Every readiness check, the slow ones (upstreams, bucket) included: what `/readyz` answers. */
  checks(): Promise<ReadinessCheck[]>
  /** The gauges read when metrics are scraped. */
  gauges(): Promise<GatewayGauges>
  /** A CancelRequest another worker received for a key this one issued (`fromPeer`: another replica passed it on). */
  cancelByKey(processId: number, secretKey: number, fromPeer?: boolean): void
  /** True from the moment a drain starts: `/readyz` answers 503. */
  readonly draining: boolean
  /** SIGTERM: stop accepting, let sessions finish up to `timeoutMs`, end the rest, ship the spool. */
  drain(timeoutMs: number): Promise<void>
  close(graceMs?: number): Promise<void>
}

/** The secure context of the files now on disk. TLS 1.2 at least: the token travels inside. */
/** The gateway's TLS identity: what it serves, and the key and certificate it signs approval requests' seal keys with. */
export interface TlsIdentity {
  context: tls.SecureContext
  key: KeyObject
  /** The leaf: the first certificate of the chain. */
  cert: X509Certificate
}

export async function loadTlsIdentity(files: {cert: string; key: string}): Promise<TlsIdentity> {
  const read = (key: 'cert' | 'key') =>
    readFile(files[key]).catch((e: NodeJS.ErrnoException) => {
      throw new GatewayConfigError(`cannot read server.tls.${key} (${files[key]}): ${e.code === 'ENOENT' ? 'no such file' : e.message}`, `point server.tls.${key} at the PEM ${key === 'cert' ? 'certificate chain' : 'private key'} the gateway serves, readable by the user it runs as`)
    })
  const [cert, key] = await Promise.all([read('cert'), read('key')])
  try {
    return {context: tls.createSecureContext({cert, key, minVersion: 'TLSv1.2'}), key: createPrivateKey(key), cert: new X509Certificate(cert)}
  } catch (e) {
    throw new GatewayConfigError(`server.tls.cert (${files.cert}) and server.tls.key (${files.key}) do not make a usable TLS identity: ${(e as Error).message}`, 'check that both are PEM and that the key belongs to the certificate')
  }
}

export async function loadTlsContext(files: {cert: string; key: string}): Promise<tls.SecureContext> {
  return (await loadTlsIdentity(files)).context
}

interface ServedTarget {
  config: TargetConfig
  upstream: UpstreamTarget
  gate: UpstreamGate
  policy: {hash: string; version: string}
}

function settingsOf(loaded: LoadedConfig): {server: GatewayServerConfig; identity: IdentityConfig} {
  const {server, identity} = loaded.config
  if (!server) throw new GatewayConfigError(`${loaded.path} has no server section, so it does not configure a gateway`, 'add server: {listen: 0.0.0.0:6432, tls: {cert: tls.crt, key: tls.key}} (see docs/gateway.md)')
  if (!identity) throw new GatewayConfigError(`${loaded.path} has no identity section: a gateway signs people in with their SSO tokens`, 'add identity: {issuer: https://login.example.com, clientId: dbgate-cli}')
  // Tokens are verified without the client secret, which only the token endpoint needs.
  const {clientSecret: _secret, ...verifying} = identity
  return {server, identity: verifying}
}

/**
 * What would stop the gateway from starting, found before anything listens or forks: the sections
 * it needs, the TLS files, each target's credentials. `--workers N` checks here once, so a broken
 * gateway.yaml ends with one error and its fix, not with N workers dying one after another.
 */
export async function checkGatewayConfig(loaded: LoadedConfig, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const {server} = settingsOf(loaded)
  await loadTlsContext(server.tls)
  for (const target of Object.values(loaded.config.targets)) await upstreamTargetOf(target, {env})
}

/** Starts the gateway. It listens at once, but signs nobody in before the IdP's keys are loaded. */
export async function startGateway(opts: StartGatewayOptions): Promise<RunningGateway> {
  const {loaded} = opts
  const config = loaded.config
  const {server: settings, identity: identityConfig} = settingsOf(loaded)
  const log = opts.log ?? (() => {})
  const baseEnv = opts.env ?? process.env
  // Keys, spool and caches live in the gateway's own directory, never in a person's: the
  // installation key of whoever runs it must not become the gateway's.
  const stateDir = settings.stateDir ?? join(userDir('data', baseEnv), 'gateway')
  const env: NodeJS.ProcessEnv = {...baseEnv, XDG_DATA_HOME: join(stateDir, 'data'), XDG_STATE_HOME: join(stateDir, 'state'), XDG_CACHE_HOME: join(stateDir, 'cache')}
  const pem = settings.signingKey ? await resolveSecret(settings.signingKey, {env: baseEnv, keyPath: 'server.signingKey'}) : undefined
  await prepareGatewayKeyDir(keyDir(env), settings.name, pem)
  const key: InstallationKey = await loadOrCreateInstallationKey(keyDir(env))
  const bucket = openBucket(config.bucket)
  await publishKey(bucket, {subject: `gateway:${settings.name}`, issuer: 'dbgate-gateway', groups: [], kind: 'service', tokenHash: '', expiresAt: new Date(8.64e15)}, key).catch((e: Error) =>
    log('warn', `could not publish the gateway's signing key to the bucket yet: ${e.message} (retried as recordings ship)`),
  )

  // Recordings an earlier run left in the spool (killed mid-session, or the bucket was down) ship
  // from the start and keep shipping, whether or not anyone signs in to start a pipeline.
  const spoolShipper = new Shipper({
    bucket,
    signer: key,
    spoolDir: defaultSpoolDir(env),
    intervalMs: 10_000,
    liveSnapshotBytesPerSecond: 1024 * 1024,
    // The pipelines' own shippers ship their live sessions; this one passes over those once up to date.
    writtenBytes: writtenBytesInProcess,
    onError: (e) => log('warn', `shipping recordings: ${e.message} (will retry)`),
  })

  // Sign-ins refused to someone whose token verified, recorded as sessions that never reached the
  // database (refused-sign-ins.ts), into the same spool, signed with the gateway's key.
  const refusedSignIns = new RefusedSignIns(
    await Recorder.open({signer: key, dbgateVersion: dbgateVersion(), spoolDir: defaultSpoolDir(env), previewRows: 0, onError: (e) => log('error', `recording a refused sign-in: ${e.message} (it is kept and retried)`)}),
    (e) => log('error', `recording a refused sign-in: ${e.message}`),
  )

  let tlsIdentity = await loadTlsIdentity(settings.tls)
  // Signed with the key of the certificate reviewers verify this gateway by, current at filing time.
  const signApprovalRequest = (request: UnsignedRequest) => signRequest(tlsIdentity, request)
  /** The targets as configured now, each with its policy resolved (published in the bucket, or local). */
  const serveTargets = async (configured: Record<string, TargetConfig>, gates?: Map<string, ServedTarget>): Promise<Map<string, ServedTarget>> => {
    const out = new Map<string, ServedTarget>()
    for (const c of Object.values(configured)) {
      const effective = await resolvePolicy({bucket, loadKeys: async () => (await loadKeyRing(bucket)).keys, target: c, cacheDir: join(stateDir, 'cache', 'policies')})
      if (effective.notice) log('warn', `target ${c.name}: ${effective.notice}`)
      const target = effective.target
      out.set(target.name, {
        config: target,
        upstream: await upstreamTargetOf(target, {env: baseEnv}),
        // A reload keeps each target's count of upstream sessions in use.
        gate: gates?.get(target.name)?.gate ?? new UpstreamGate({max: target.tunnel.maxUpstreamSessions, queueTimeoutMs: target.tunnel.upstreamQueueTimeoutMs}),
        policy: {hash: effective.hash, version: effective.version},
      })
    }
    return out
  }
  let targets = await serveTargets(config.targets)
  const configsOf = (served: Map<string, ServedTarget>) => Object.fromEntries([...served].map(([name, t]) => [name, t.config])) as Record<string, TargetConfig>
  // Changed in place by a reload, so the API's listing follows it too.
  const targetConfigs = configsOf(targets)

  const pipelines = new PipelineCache(
    (name, identity) => {
      const t = targets.get(name)!
      return buildTunnelHooks({config, target: t.config, identity, env, log, policy: t.policy, upstream: t.upstream, signApprovalRequest})
    },
    settings.pipelineIdleMs,
    log,
  )

  // The IdP's keys: fetched now, and retried until they load; the gateway is not ready before.
  let idp: {ok: boolean; detail: string} = {ok: false, detail: `fetching the signing keys of ${identityConfig.issuer}`}
  let idpTimer: NodeJS.Timeout | undefined
  let readyWaiters: (() => void)[] = []
  const fetchKeys = async () => {
    try {
      const n = await loadSigningKeys(identityConfig)
      idp = {ok: true, detail: `${n} signing key(s) of ${identityConfig.issuer} loaded`}
      log('info', idp.detail)
      for (const w of readyWaiters.splice(0)) w()
    } catch (error) {
      const cause = (error as Error & {cause?: Error}).cause
      idp = {ok: false, detail: `cannot load the signing keys of ${identityConfig.issuer}: ${(error as Error).message}${cause ? ` (${cause.message})` : ''}; nobody can sign in until they load`}
      log('error', idp.detail)
      idpTimer = setTimeout(() => void fetchKeys(), opts.idpRetryMs ?? 5000)
      idpTimer.unref()
    }
  }
  await fetchKeys()

  const observer = opts.observer
  // One for every listener, so that their memory and their lines are bounded together.
  const repeats = new RepeatLimitedLog(log, opts.logRepeats)
  const refused = (refusal: SignInRefusal, request: TokenAuthRequest, identity?: Identity): TokenAuthResult => {
    observer?.signInFailed(refusal.reason)
    repeats.write('warn', `sign-ins refused (${refusal.reason})`, addressOf(request.clientAddress), `sign-in refused (${refusal.reason}) for user ${quoteUntrusted(request.user)} to ${quoteUntrusted(request.database)} from ${request.clientAddress}`)
    if (identity) {
      const application = request.startupParams.application_name
      refusedSignIns.record({
        identity,
        target: Object.hasOwn(targetConfigs, request.database) ? request.database : undefined,
        database: request.database,
        client: {...(application !== undefined ? {application} : {}), user: request.user, address: request.clientAddress},
        reason: refusal.reason,
        message: refusal.error.message.replace(/^dbgate: /, ''),
      })
    }
    return {ok: false, error: refusal.error}
  }

  // The token each open session signed in with: an IdP that withdraws the key that signed it (a
  // key revoked) ends the session, as it would refuse the token at a new sign-in; neither expiry nor
  // sessionOutlivesToken has anything to do with it.
  const signedWith = new Map<GatewayConnection, {token: string; identity: Identity; target: string; print: string}>()
  let checkingKeys = false
  const checkKeys = async () => {
    // Run with no session open too: the verifier learns of a withdrawn key here, and a sign-in with
    // one while nobody was connected would otherwise verify against its older copy of the keys.
    if (checkingKeys) return
    checkingKeys = true
    try {
      const keys = await publishedKeys(identityConfig)
      if (!keys) return
      // The verifier first, so that nobody signs in with the key while its sessions are ended.
      const withdrawn = await followPublishedKeys(identityConfig, keys)
      if (withdrawn.length > 0) log('warn', `${identityConfig.issuer} no longer publishes the signing key(s) ${withdrawn.map((k) => `"${k}"`).join(', ')}: tokens signed with them are refused from now on, and the sessions they signed in end`)
      for (const [conn, {token, identity}] of signedWith) {
        if (await signedByPublishedKey(keys, token)) continue
        signedWith.delete(conn)
        log('warn', `ending the session of ${identityLabel(identity)}: ${identityConfig.issuer} no longer publishes the key its token was signed with`)
        conn.end(KEY_WITHDRAWN, settings.runningStatementGraceMs)
      }
      // Remote MCP sessions hold database sessions and statements waiting for reviewers between
      // requests: they end too, rather than at the next request's refused token.
      const ended = await mcp?.endSignedWith(async (token) => !(await signedByPublishedKey(keys, token)), KEY_WITHDRAWN_MCP)
      if (ended) log('warn', `ended ${ended} MCP session(s): ${identityConfig.issuer} no longer publishes the key their sign-in was signed with`)
    } finally {
      checkingKeys = false
    }
  }
  /**
   * After a reload: a session runs on the pipeline it started with, so it may keep neither access
   * the configuration no longer gives nor a policy the configuration no longer has. Whoever the new
   * configuration would refuse a sign-in to the session's target (the target removed, its `allow`
   * no longer matching their groups), and every session whose target's policy or settings changed
   * (a rule added after an incident must hold for the sessions already open), has that session
   * ended after its statement in flight, as for a withdrawn key, and a statement it holds for a
   * reviewer withdrawn. Someone who may still use the target connects again, under the new policy.
   */
  const accessLost = (identity: Identity, target: string): string | undefined => {
    const picked = pickTarget(targetConfigs, target, identity)
    if (picked.ok) return undefined
    return picked.refusal.reason === 'unknown-target'
      ? `the gateway no longer serves target "${target}" (a reload removed it)`
      : `${identityLabel(identity)} may no longer use target "${target}" (a reload changed its allow)`
  }
  const policyChanged = (target: string, print: string): string | undefined => {
    const served = targets.get(target)
    if (!served || targetPrint(served) === print) return undefined
    return `the policy of target "${target}" changed (a reload)`
  }
  const endRefusedSessions = async () => {
    for (const [conn, {identity, target, print}] of signedWith) {
      const lost = accessLost(identity, target)
      const why = lost ?? policyChanged(target, print)
      if (why === undefined) continue
      signedWith.delete(conn)
      log('warn', `ending the session of ${identityLabel(identity)} on target ${target}: ${why}`)
      conn.end(
        lost ? `dbgate: this session ends: ${why}; ask the gateway administrators if you still need it` : `dbgate: this session ends: ${why}; connect again to work under the new one`,
        settings.runningStatementGraceMs,
      )
    }
    const ended = await mcp?.endRefused(({identity, target}) => {
      const why = accessLost(identity, target)
      return why === undefined ? undefined : `dbgate: this MCP session has ended: ${why}; ask the gateway administrators if you still need it`
    })
    if (ended) log('warn', `ended ${ended} MCP session(s) whose owner the reloaded configuration no longer lets use their target, or whose target's policy or settings it changed`)
  }

  const keyTimer = setInterval(() => void checkKeys().catch((e: Error) => log('warn', `checking the identity provider's keys: ${e.message}`)), opts.keyCheckMs ?? 60_000)
  keyTimer.unref()

  // Keyed by the verified identity (issuer and subject, and the verified mailbox that names the
  // person under any of their subjects), never by what the client names itself.
  const sessionsPerPerson = new CountedSlots(settings.maxSessionsPerPerson)
  const authenticate = async (request: TokenAuthRequest, conn: GatewayConnection): Promise<TokenAuthResult> => {
    if (!idp.ok) {
      return refused({reason: 'idp-unavailable', error: {severity: 'FATAL', code: '57P03', message: 'dbgate: the gateway is not ready: it has not loaded the identity provider\'s signing keys yet', hint: 'Try again shortly; its administrators see why in its log and /readyz.'}}, request)
    }
    const verified = await verifySignIn(identityConfig, request.password, opts.now)
    if (!verified.ok) return refused(verified.refusal, request)
    const identity = verified.identity
    const wrongUser = userMismatch(identity, request.user)
    if (wrongUser) return refused(wrongUser, request, identity)
    const picked = pickTarget(targetConfigs, request.database, identity)
    if (!picked.ok) return refused(picked.refusal, request, identity)
    const served = targets.get(picked.target.name)!
    const personSlot = sessionsPerPerson.takeAll(personKeys(identity))
    if (!personSlot) {
      const max = sessionsPerPerson.max
      repeats.write('warn', 'sign-ins refused over server.maxSessionsPerPerson', identityLabel(identity), `${identityLabel(identity)} is at server.maxSessionsPerPerson (${max} sessions open): refused another from ${request.clientAddress} (their open sessions go on)`)
      return refused(
        {
          reason: 'too-many-sessions',
          error: {
            severity: 'FATAL',
            code: '53300',
            message: `dbgate: too many sessions: ${identityLabel(identity)} already has ${max} session(s) open on this gateway, its cap per person (server.maxSessionsPerPerson)`,
            hint: 'Close a session you no longer use (idle connection pools count too), then reconnect; the gateway administrators set server.maxSessionsPerPerson.',
          },
        },
        request,
        identity,
      )
    }
    // A reload while the pipeline was being prepared replaces it: the pipeline, and the target's
    // upstream, are taken again from the configuration now in force, so that no session starts on
    // a configuration the reload's ending of sessions has already passed over.
    let lease: PipelineLease | undefined
    let current = served
    for (let attempt = 1; ; attempt++) {
      current = targets.get(served.config.name) ?? current
      try {
        lease = await pipelines.acquire(current.config.name, identity)
      } catch (error) {
        personSlot()
        log('error', `target ${current.config.name}: could not start the pipeline for ${identityLabel(identity)}: ${(error as Error).message}`)
        return {ok: false, error: {severity: 'FATAL', code: '08006', message: `dbgate: target "${current.config.name}" is unavailable: the gateway could not prepare its checks (${(error as Error).message})`, hint: 'Try again shortly; if it persists, tell the gateway administrators.'}}
      }
      // The startup parameters are the target policy's to judge (role, session_replication_role, …),
      // and judged here, not only once the connection goes on: a person refused for them is refused
      // a sign-in like any other, and recorded as one.
      let startupRefusal: PgNoticeFields | undefined
      try {
        startupRefusal = lease.hooks.startup?.(request.startupParams)
      } catch (error) {
        lease.release()
        personSlot()
        throw error
      }
      if (startupRefusal) {
        lease.release()
        personSlot()
        return refused({reason: 'startup-parameter', error: startupRefusal}, request, identity)
      }
      // A reload while the pipeline was being prepared may have taken this person's access away; the
      // sessions it ended did not include this one yet, so the configuration now in force decides.
      const stillPicked = pickTarget(targetConfigs, request.database, identity)
      if (!stillPicked.ok) {
        lease.release()
        personSlot()
        return refused(stillPicked.refusal, request, identity)
      }
      if (!lease.retired && targets.get(current.config.name) === current) break
      lease.release()
      if (attempt === 3) {
        personSlot()
        log('warn', `target ${current.config.name}: the sign-in of ${identityLabel(identity)} met a reload three times while it was being prepared`)
        return {ok: false, error: {severity: 'FATAL', code: '57P03', message: `dbgate: target "${current.config.name}" is being reconfigured: the gateway reloaded its configuration while this sign-in was being prepared`, hint: 'Connect again shortly.'}}
      }
    }
    // A session the client hung up on still runs on the server until the server ends it: it counts
    // until then, and keeps its pipeline, whose commit gate holds the person's other sessions while
    // what it sent may still commit (a pipeline disposed and built again would know nothing of it).
    conn.onSessionGone(lease.release)
    conn.onSessionGone(personSlot)
    limitSession(conn, identity, settings, opts.now)
    signedWith.set(conn, {token: canonicalToken(request.password), identity, target: current.config.name, print: targetPrint(current)})
    conn.onClose(() => signedWith.delete(conn))
    log('info', `${identityLabel(identity)} signed in to target ${current.config.name} from ${request.clientAddress}`)
    return {
      ok: true,
      grant: {
        target: current.upstream,
        targetName: current.config.name,
        hooks: observed(signedInAs(lease.hooks, identity), current.config.name, observer),
        applicationName: (app) => identityApplicationName(identity, app),
        upstreamGate: current.gate,
      },
    }
  }

  const server = new GatewayServer({
    listen: settings.listen,
    secureContext: () => tlsIdentity.context,
    authenticate,
    observer,
    log,
    repeats,
    authTimeoutMs: config.tunnel.authTimeoutMs,
    signInTimeoutMs: settings.signInTimeoutMs,
    pendingSignIns: {max: settings.maxPendingSignIns, maxPerAddress: settings.maxPendingSignInsPerAddress},
    maxMessageSize: config.tunnel.maxMessageSize,
    ...(opts.worker ? {shared: true, cancelElsewhere: opts.worker.cancelElsewhere} : {}),
    ...(settings.peers.length > 0 ? {peers: new PeerCancels({peers: settings.peers, report: (level, kind, message) => repeats.write(level, kind, 'peers', message)})} : {}),
  })
  let api: GatewayApi | undefined
  let mcp: McpHttp | undefined
  try {
    await server.listen()
    // The remote MCP endpoint (the MCP SDK, node-postgres: ~6 MB of heap) loads only when configured.
    mcp = settings.mcp
      ? (await import('./mcp.js')).startGatewayMcp({
          settings: settings.mcp,
          sessionLimits: {maxSessionDurationMs: settings.maxSessionDurationMs, sessionOutlivesToken: settings.sessionOutlivesToken},
          config,
          identity: identityConfig,
          targets: () => targetConfigs,
          served: (name) => targets.get(name),
          sessionsPerPerson,
          ready: () => idp.ok,
          env,
          observer,
          observe: (hooks, target) => observed(hooks, target, observer),
          signApprovalRequest,
          now: opts.now,
          log,
          repeats,
          refusedSignIns,
        })
      : undefined
    if (settings.api) api = await startGatewayApi({...(opts.worker ? {shared: true} : {}), listen: settings.api, tls: settings.tls, identity: identityConfig, targets: targetConfigs, ready: () => idp.ok, handle: mcp?.handle, now: opts.now, log, repeats, observer, pending: {max: settings.maxPendingSignIns, maxPerAddress: settings.maxPendingSignInsPerAddress, timeoutMs: settings.signInTimeoutMs}})
  } catch (error) {
    clearTimeout(idpTimer)
    clearInterval(keyTimer)
    await server.close(0)
    await mcp?.close()
    await pipelines.close()
    repeats.close()
    throw error
  }
  const spoolDir = defaultSpoolDir(env)
  let draining = false
  const slowChecks = cachedFor(5000, async () => {
    const [upstreams, bucketOk, spoolOk] = await Promise.all([
      upstreamChecks([...targets.values()].map((t) => ({name: t.config.name, host: t.upstream.host, port: t.upstream.port}))),
      bucketCheck(bucket, settings.name),
      spoolCheck(spoolDir, settings.name),
    ])
    return [...upstreams, bucketOk, spoolOk]
  })
  // Bucket-wide: every replica reports the same number (use max() across replicas).
  const pendingApprovals = cachedFor(15_000, async () => (await listRequests(bucket)).filter((v) => v.state === 'pending').length)
  const reloadConfig = opts.reloadConfig ?? (() => loadConfig({configPath: loaded.path, env: baseEnv}))
  let reloading: Promise<unknown> = Promise.resolve()

  spoolShipper.start()
  log('info', `gateway ${settings.name} listening on ${server.address.host}:${server.address.port}${api ? `, API on https://${api.address.host}:${api.address.port}` : ''}${mcp ? `, remote MCP at ${settings.mcp!.publicUrl}/mcp/<target>` : ''}`)

  return {
    address: server.address,
    ...(api ? {api: api.address} : {}),
    signingKeyId: key.keyId,
    get ready() {
      return idp.ok
    },
    readiness: () => [{name: 'idp-keys', ok: idp.ok, detail: idp.detail}],
    whenReady: () => (idp.ok ? Promise.resolve() : new Promise<void>((resolve) => readyWaiters.push(resolve))),
    get sessionCount() {
      return server.connectionCount
    },
    get pipelineCount() {
      return pipelines.size
    },
    async reloadTls() {
      tlsIdentity = await loadTlsIdentity(settings.tls)
      await api?.reloadTls()
    },
    reload() {
      const run = reloading.then(async () => {
        // Everything is read and checked first; only then is anything swapped in.
        const next = await reloadConfig()
        const nextSettings = next.config.server
        if (!nextSettings) throw new GatewayConfigError(`${next.path} no longer has a server section`, 'restore the server section')
        const nextTls = await loadTlsIdentity(nextSettings.tls)
        const nextTargets = await serveTargets(next.config.targets, targets)
        // Only the targets and the TLS files apply now; every other change is named, never dropped unsaid.
        for (const name of changedUntilRestart(loaded.config, next.config)) log('warn', `reload: ${name} changed; it takes effect at the next start`)
        tlsIdentity = nextTls
        Object.assign(settings.tls, nextSettings.tls)
        await api?.reloadTls()
        targets = nextTargets
        for (const name of Object.keys(targetConfigs)) delete targetConfigs[name]
        Object.assign(targetConfigs, configsOf(nextTargets))
        pipelines.retireAll()
        // The new configuration is in force from here: a failure to end a session is not a failed reload.
        await endRefusedSessions().catch((e: Error) => log('error', `reload: ending the sessions it took access from: ${e.message}`))
        const report = [...nextTargets.values()].map((t) => ({name: t.config.name, policyVersion: t.policy.version, policyHash: t.policy.hash}))
        log('info', `reloaded: TLS certificate and the policy of ${report.map((t) => `${t.name} (${t.policyVersion} ${t.policyHash.slice(0, 12)})`).join(', ') || 'no target'}`)
        return {targets: report}
      })
      reloading = run.catch(() => undefined)
      return run
    },
    async checks() {
      if (draining) return [{name: 'draining', ok: false, detail: 'the gateway is shutting down (SIGTERM): open sessions may finish, new ones go to another replica'}]
      return [{name: 'idp-keys', ok: idp.ok, detail: idp.detail}, ...(await slowChecks())]
    },
    async gauges() {
      const [approvalsPending, shippingBacklogBytes] = await Promise.all([pendingApprovals().catch(() => 0), spoolBacklogBytes(spoolDir)])
      return {
        approvalsPending,
        shippingBacklogBytes,
        upstreamSessionsInUse: [...targets.values()].reduce((n, t) => n + t.gate.inUse, 0),
      }
    },
    cancelByKey: (processId, secretKey, fromPeer) => server.cancelByKey(processId, secretKey, fromPeer),
    get draining() {
      return draining
    },
    async drain(timeoutMs: number) {
      draining = true
      clearTimeout(idpTimer)
      clearInterval(keyTimer)
      await Promise.all([server.drain(timeoutMs), api?.close(), mcp?.close()])
      // What was counted but not yet summarised, before the last lines of this process.
      repeats.close()
      await pipelines.close()
      await refusedSignIns.settled()
      await spoolShipper.stop()
      // Whatever is left in the spool (this run's, or a killed run's), shipped before exit.
      const last = await shipPending({bucket, signer: key, spoolDir}).catch((e: Error) => {
        log('warn', `recordings stay in the spool until the next start: ${e.message}`)
        return undefined
      })
      if (last?.failed.length) log('warn', `${last.failed.length} recording(s) stay in the spool ${spoolDir} until the bucket is reachable; they ship at the next start`)
    },
    async close(graceMs = 5000) {
      draining = true
      clearTimeout(idpTimer)
      clearInterval(keyTimer)
      readyWaiters = []
      await Promise.all([server.close(graceMs), api?.close(), mcp?.close()])
      repeats.close()
      await pipelines.close()
      await refusedSignIns.settled()
      await spoolShipper.stop()
    },
  }
}

const KEY_WITHDRAWN_MCP =
  'dbgate: this MCP session has ended: the identity provider no longer publishes the key your sign-in token was signed with (revoked or rotated out); start a new one with a fresh token'

const KEY_WITHDRAWN =
  'dbgate: the identity provider no longer publishes the key your sign-in token was signed with (revoked or rotated out), so this session ends; reconnect with a fresh token (`dbgate login`, or `dbgate token` in CI)'

/**
 * A session ends at `server.maxSessionDuration`, and (unless `server.sessionOutlivesToken`) when the
 * token it signed in with expires; either way once its statement in flight has finished, or is
 * cancelled `server.runningStatementGrace` later.
 */
function limitSession(conn: GatewayConnection, identity: Identity, settings: GatewayServerConfig, now: () => Date = () => new Date()): void {
  const timers: NodeJS.Timeout[] = []
  const after = (ms: number, message: string) => {
    const t = setTimeout(() => conn.end(message, settings.runningStatementGraceMs), Math.max(0, Math.min(ms, 2 ** 31 - 1)))
    t.unref()
    timers.push(t)
  }
  after(
    settings.maxSessionDurationMs,
    `dbgate: this session reached the gateway's maximum session duration of ${formatDuration(settings.maxSessionDurationMs)} (server.maxSessionDuration); reconnect to continue`,
  )
  if (!settings.sessionOutlivesToken) {
    after(
      identity.expiresAt.getTime() - now().getTime(),
      'dbgate: your sign-in token expired, and sessions on this gateway end with it (server.sessionOutlivesToken: false); reconnect with a fresh token (`dbgate login`, or `dbgate token` in CI)',
    )
  }
  conn.onClose(() => {
    for (const t of timers) clearTimeout(t)
  })
}

/**
 * The pipeline's hooks with this session's own identity on its start. The pipeline is shared by the
 * person's sessions and was built with the token of the first; each session is recorded with the
 * token it signed in with (its hash, jti and expiry), so a leaked token's sessions are found by it.
 */
function signedInAs(hooks: ProxyHooks, identity: Identity): ProxyHooks {
  const start = hooks.onSessionStart
  return start ? {...hooks, onSessionStart: (session) => start({...session, identity})} : hooks
}

/** The pipeline's hooks for one session, reporting to the observer as the session goes. */
function observed(hooks: ProxyHooks, target: string, observer: GatewayObserver | undefined): ProxyHooks {
  if (!observer) return hooks
  return {
    ...hooks,
    onSessionStart: (session) => {
      observer.sessionOpened(target)
      hooks.onSessionStart?.(session)
    },
    onSessionEnd: (session, reason) => {
      observer.sessionClosed(target)
      hooks.onSessionEnd?.(session, reason)
    },
    onStatement: (event) => {
      observer.statement(target, decisionOf(event))
      const masked = event.resultFilter?.maskedValues
      if (typeof masked === 'number' && masked > 0) observer.valuesMasked(target, masked)
      hooks.onStatement?.(event)
    },
  }
}

/** The decision as metrics count it, from the verdict's typed fields. */
export function decisionOf(event: StatementEvent): StatementDecision {
  const {decision, approval} = event.verdict
  if (approval !== undefined || decision?.action === 'require_approval') return 'hold'
  if (decision?.syntaxError) return 'error'
  if (event.verdict.action === 'reject') return 'deny'
  if (decision?.action === 'warn') return 'warn'
  return 'allow'
}
