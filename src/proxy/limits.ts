/**
 * The tunnel's limits before and around authentication, and their defaults (documented in
 * docs/tunnel.md and docs/configuration.md). One place, read by the tunnel and by the configuration.
 */

export interface TunnelLimits {
  /** Startup, authentication and the upstream login together (tunnel.authTimeout). */
  authTimeoutMs: number
  /** Client connections at once, authenticated or not (tunnel.maxClientConnections). */
  maxClientConnections: number
  /** Upstream sessions open at once (tunnel.maxUpstreamSessions). */
  maxUpstreamSessions: number
  /** How long a client waits for an upstream session before it is refused (tunnel.upstreamQueueTimeout). */
  upstreamQueueTimeoutMs: number
}

export const DEFAULT_TUNNEL_LIMITS: Readonly<TunnelLimits> = Object.freeze({
  // PostgreSQL's authentication_timeout.
  authTimeoutMs: 60_000,
  // PostgreSQL's max_connections default; PgBouncer's max_client_conn.
  maxClientConnections: 100,
  // PgBouncer's default_pool_size: well inside the server's own connection slots.
  maxUpstreamSessions: 20,
  upstreamQueueTimeoutMs: 30_000,
})

/** PostgreSQL's MAX_STARTUP_PACKET_LENGTH. */
export const MAX_STARTUP_PACKET_SIZE = 10_000

/**
 * Authentication messages are small (a SCRAM exchange is a few hundred bytes); PostgreSQL caps
 * them at PG_MAX_AUTH_TOKEN_LENGTH. Until the client has authenticated, nothing larger is read.
 */
export const MAX_AUTH_MESSAGE_SIZE = 65_535
