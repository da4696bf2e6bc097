import type {Session} from '../identity/session.js'
import {identityLabel, type Identity} from '../identity/types.js'
import type {LoadedConfig, TargetConfig} from '../config/types.js'

/** A verified identity kept valid for as long as a tunnel runs. */
export interface BoundIdentity {
  current(): Identity
  /** The token that proves it now (renewed in place). Never print it. */
  token(): string
  /** Stops the refresh timer. */
  stop(): void
}

export interface BindIdentityOptions {
  env?: NodeJS.ProcessEnv
  warn?: (message: string) => void
  /** Called when the identity can no longer be renewed or is no longer allowed; the tunnel must end. */
  onLost: (error: Error) => void
  /** How long before expiry to renew. */
  marginMs?: number
}

/**
 * Verifies who is opening the tunnel (stored login, DBGATE_TOKEN, or service credentials), checks
 * the target's `allow` groups, and renews the token in place before it expires. Returns undefined
 * when the configuration has no `identity` section.
 */
export async function bindIdentity(loaded: LoadedConfig, target: Pick<TargetConfig, 'allow'>, opts: BindIdentityOptions): Promise<BoundIdentity | undefined> {
  if (!loaded.config.identity) return undefined
  // OIDC (openid-client, jose), the keyring and the token store load only for a target with an
  // identity: a tunnel without one never needs them, and keeps ~1.5 MB less heap for its lifetime.
  // A module that fails to load fails the tunnel's opening here, with its own error.
  const [{identityConfigFrom}, {authorizeTarget, getIdentity}, {openTokenStore}] = await Promise.all([
    import('../identity/cli.js'),
    import('../identity/session.js'),
    import('../identity/token-store.js'),
  ])
  const env = opts.env ?? process.env
  const config = await identityConfigFrom(loaded, env)
  const store = openTokenStore({warn: opts.warn, env})
  let session: Session = await getIdentity(config, {env, warn: opts.warn, store})
  const check = (s: Session) => {
    if (target.allow === undefined) return
    const r = authorizeTarget(s.identity, target.allow)
    if (!r.ok) throw r.error
  }
  check(session)
  const margin = opts.marginMs ?? 60_000
  let timer: NodeJS.Timeout | undefined
  let stopped = false
  const schedule = () => {
    if (stopped) return
    const wait = Math.max(1000, session.identity.expiresAt.getTime() - Date.now() - margin)
    // setTimeout cannot wait longer than about 24.8 days; wake early and re-plan.
    timer = setTimeout(renew, Math.min(wait, 2 ** 31 - 1))
    timer.unref()
  }
  const renew = () => {
    if (Date.now() < session.identity.expiresAt.getTime() - margin) return schedule()
    session.refresh().then(
      (next) => {
        try {
          check(next)
        } catch (error) {
          return opts.onLost(error as Error)
        }
        session = next
        schedule()
      },
      (error: Error) => opts.onLost(error),
    )
  }
  schedule()
  return {
    current: () => session.identity,
    token: () => session.token,
    stop() {
      stopped = true
      clearTimeout(timer)
    },
  }
}

/** application_name for the upstream: who is behind the session, then the client program. */
export function identityApplicationName(identity: Identity | undefined, clientApp: string | undefined): string {
  const who = identity ? identityLabel(identity) : undefined
  const name = who ? `dbgate/${who}` : 'dbgate'
  // PostgreSQL truncates application_name to 63 bytes; keep the identity whole before the client's name.
  return clientApp && Buffer.byteLength(`${name} ${clientApp}`) <= 63 ? `${name} ${clientApp}` : name
}

/**
 * How an opened tunnel ends, for `openTunnel` and `openViaGateway` alike: `close` stops renewing
 * the identity, closes the tunnel, then resolves `closed`. `parts` is read at close time, since
 * both are made after the ending is.
 */
export function tunnelEnding(parts: () => {tunnel?: {close(graceMs?: number, message?: string): Promise<void>}; identity?: BoundIdentity}): {
  closed: Promise<void>
  close(graceMs?: number, message?: string): Promise<void>
} {
  let resolveClosed!: () => void
  const closed = new Promise<void>((resolve) => (resolveClosed = resolve))
  const close = async (graceMs?: number, message?: string) => {
    const {tunnel, identity} = parts()
    identity?.stop()
    await tunnel?.close(graceMs, message)
    resolveClosed()
  }
  return {closed, close}
}
