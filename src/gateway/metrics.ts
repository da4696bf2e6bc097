/**
 * The gateway's Prometheus metrics (prom-client), on a registry of their own so that two gateways
 * in one process (tests) or another library's metrics never mix with them.
 *
 * Counters and the open-session gauge move as the server reports events through the
 * `GatewayObserver` methods; the gauges that describe a state owned elsewhere (approvals pending,
 * shipping backlog, upstream sessions in use) are read from a callback once per scrape, so they are
 * never stale and the server does not have to push them.
 */
import {Counter, Gauge, Registry, collectDefaultMetrics} from 'prom-client'

import {heapGivenBack, type IdleRelease} from '../runtime/idle-memory.js'
import type {GatewayGauges, GatewayObserver, SignInFailure, StatementDecision} from './observer.js'


export const METRIC_PREFIX = 'dbgate_gateway_'

export interface GatewayMetricsOptions {
  /** Read once per scrape for the state gauges. */
  gauges: () => GatewayGauges | Promise<GatewayGauges>
  /** Node.js process metrics (CPU, memory, event loop lag, handles …); on unless false. */
  processMetrics?: boolean
}

export interface GatewayMetrics extends GatewayObserver {
  readonly registry: Registry
  /** The Content-Type of `render()`'s text (Prometheus text exposition format). */
  readonly contentType: string
  /** The text a scrape of `/metrics` returns. Rejects when the gauges callback fails. */
  render(): Promise<string>
  /** The process collected garbage to give memory back after going quiet (src/runtime/idle-memory.ts). */
  memoryReleased(release: IdleRelease): void
}

export function createGatewayMetrics(options: GatewayMetricsOptions): GatewayMetrics {
  const registry = new Registry()
  if (options.processMetrics !== false) collectDefaultMetrics({register: registry, prefix: METRIC_PREFIX})

  const sessionsOpen = new Gauge({
    name: `${METRIC_PREFIX}sessions_open`,
    help: 'Client sessions open through the gateway, by target.',
    labelNames: ['target'] as const,
    registers: [registry],
  })
  const statements = new Counter({
    name: `${METRIC_PREFIX}statements_total`,
    help: 'Statements the pipeline decided, by target and decision (allow, warn, deny, hold, error).',
    labelNames: ['target', 'decision'] as const,
    registers: [registry],
  })
  const valuesMasked = new Counter({
    name: `${METRIC_PREFIX}values_masked_total`,
    help: 'Values masked in results sent to clients, by target.',
    labelNames: ['target'] as const,
    registers: [registry],
  })
  const signInFailures = new Counter({
    name: `${METRIC_PREFIX}sign_in_failures_total`,
    help: 'Sign-ins to the gateway refused, by reason.',
    labelNames: ['reason'] as const,
    registers: [registry],
  })
  const idleReleases = new Counter({
    name: `${METRIC_PREFIX}idle_memory_releases_total`,
    help: 'Times the process collected garbage to give memory back after going quiet (a full collection and a scavenge).',
    registers: [registry],
  })
  const idleReleasedBytes = new Counter({
    name: `${METRIC_PREFIX}idle_memory_released_bytes_total`,
    help: 'V8 heap (young generation and old space) given back by those releases, in bytes.',
    registers: [registry],
  })
  const idlePause = new Counter({
    name: `${METRIC_PREFIX}idle_memory_release_pause_seconds_total`,
    help: 'Time the event loop was held by those releases (a statement arriving meanwhile waits).',
    registers: [registry],
  })
  // The state gauges are read in `collect`, which every way of reading the registry runs (a
  // scrape here, or the primary's AggregatorRegistry asking a `--workers` worker). One read of the
  // callback serves the three gauges of one scrape.
  let reading: Promise<GatewayGauges> | undefined
  const read = () => {
    reading ??= Promise.resolve()
      .then(() => options.gauges())
      .finally(() => setImmediate(() => (reading = undefined)))
    return reading
  }
  new Gauge({
    name: `${METRIC_PREFIX}approvals_pending`,
    help: 'Approval requests waiting for a reviewer (in the whole bucket, so every replica reports the same number).',
    registers: [registry],
    aggregator: 'max',
    async collect() {
      this.set((await read()).approvalsPending)
    },
  })
  new Gauge({
    name: `${METRIC_PREFIX}shipping_backlog_bytes`,
    help: 'Bytes of recordings in the local spool not yet shipped to the bucket.',
    registers: [registry],
    // The workers of one machine share one spool, and each reports all of it.
    aggregator: 'max',
    async collect() {
      this.set((await read()).shippingBacklogBytes)
    },
  })
  new Gauge({
    name: `${METRIC_PREFIX}upstream_sessions_in_use`,
    help: 'Connections to upstream databases in use.',
    registers: [registry],
    async collect() {
      this.set((await read()).upstreamSessionsInUse)
    },
  })

  // Every reason is exported from the start at 0, so a rate() over a reason that has not happened
  // yet is 0 rather than absent (alerts on absent series are easy to get wrong).
  for (const reason of SIGN_IN_FAILURES) signInFailures.inc({reason}, 0)

  /** Open sessions per target, kept here so a close reported twice cannot drive the gauge negative. */
  const open = new Map<string, number>()

  return {
    registry,
    contentType: registry.contentType,
    signInFailed(reason: SignInFailure) {
      signInFailures.inc({reason})
    },
    sessionOpened(target: string) {
      const n = (open.get(target) ?? 0) + 1
      open.set(target, n)
      sessionsOpen.set({target}, n)
    },
    sessionClosed(target: string) {
      const n = Math.max(0, (open.get(target) ?? 0) - 1)
      open.set(target, n)
      sessionsOpen.set({target}, n)
    },
    statement(target: string, decision: StatementDecision) {
      statements.inc({target, decision})
    },
    valuesMasked(target: string, count: number) {
      if (count > 0) valuesMasked.inc({target}, count)
    },
    render() {
      return registry.metrics()
    },
    memoryReleased(release: IdleRelease) {
      idleReleases.inc()
      idleReleasedBytes.inc(heapGivenBack(release))
      idlePause.inc(release.pauseMs / 1000)
    },
  }
}

/** Every `SignInFailure`, checked against the type so a new reason cannot be forgotten here. */
const SIGN_IN_FAILURES = Object.keys({
  'no-tls': true,
  'tls-handshake': true,
  'token-malformed': true,
  'token-signature': true,
  'token-expired': true,
  'token-issuer': true,
  'token-audience': true,
  'token-client': true,
  'not-allowed': true,
  'unknown-target': true,
  'idp-unavailable': true,
  'too-many-pending': true,
  'too-many-sessions': true,
  'startup-parameter': true,
} satisfies Record<SignInFailure, true>) as SignInFailure[]
