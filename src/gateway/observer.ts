/**
 * What the gateway reports about itself, for its metrics. The server calls these; the metrics
 * module (prom-client) implements them. Kept free of any library so either side can be tested alone.
 */

/** Why a sign-in to the gateway was refused, one label value per reason. */
export type SignInFailure =
  | 'no-tls'
  | 'tls-handshake'
  | 'token-malformed'
  | 'token-signature'
  | 'token-expired'
  | 'token-issuer'
  | 'token-audience'
  | 'token-client'
  | 'not-allowed'
  | 'unknown-target'
  | 'idp-unavailable'
  | 'too-many-pending'
  | 'too-many-sessions'
  | 'startup-parameter'

/** How the pipeline decided a statement. */
export type StatementDecision = 'allow' | 'warn' | 'deny' | 'hold' | 'error'

export interface GatewayObserver {
  signInFailed(reason: SignInFailure): void
  sessionOpened(target: string): void
  sessionClosed(target: string): void
  statement(target: string, decision: StatementDecision): void
  valuesMasked(target: string, count: number): void
}

/** Values read when metrics are scraped rather than counted as they happen. */
export interface GatewayGauges {
  approvalsPending: number
  /** Bytes of recordings in the local spool not yet shipped to the bucket. */
  shippingBacklogBytes: number
  upstreamSessionsInUse: number
}

/** What `/readyz` reports: `degraded` still serves (200), `not-ready` does not (503). */
export interface ReadinessCheck {
  name: string
  ok: boolean
  /** A failing check that still lets the gateway serve (the bucket: sessions spool locally). */
  degradesOnly?: boolean
  detail: string
}
