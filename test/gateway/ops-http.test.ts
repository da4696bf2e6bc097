import {request} from 'node:http'
import {connect} from 'node:net'

import {afterEach, describe, expect, it} from 'vitest'

import {createGatewayMetrics, type GatewayMetrics} from '../../src/gateway/metrics.js'
import type {GatewayGauges, ReadinessCheck} from '../../src/gateway/observer.js'
import {startOpsHttp, type OpsHttpOptions, type OpsHttpServer} from '../../src/gateway/ops-http.js'

const open: OpsHttpServer[] = []
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()))
})

interface Setup {
  checks?: () => Promise<ReadinessCheck[]>
  gauges?: () => GatewayGauges
  readinessTimeoutMs?: number
  logRepeats?: OpsHttpOptions['logRepeats']
}

async function start(setup: Setup = {}): Promise<{base: string; metrics: GatewayMetrics; logs: string[]}> {
  const metrics = createGatewayMetrics({
    gauges: setup.gauges ?? (() => ({approvalsPending: 0, shippingBacklogBytes: 0, upstreamSessionsInUse: 0})),
  })
  const logs: string[] = []
  const server = await startOpsHttp({
    port: 0,
    readiness: setup.checks ?? (async () => []),
    metrics,
    readinessTimeoutMs: setup.readinessTimeoutMs,
    logRepeats: setup.logRepeats,
    log: (level, message) => logs.push(`${level} ${message}`),
  })
  open.push(server)
  return {base: `http://127.0.0.1:${server.port}`, metrics, logs}
}

/** A raw request, so methods fetch() refuses (or treats specially) can be sent too. */
function call(base: string, method: string, path: string): Promise<{status: number; headers: Record<string, unknown>; body: string}> {
  return new Promise((resolve, reject) => {
    const req = request(`${base}${path}`, {method}, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8')}))
    })
    req.on('error', reject)
    req.end()
  })
}

/** The value of one sample line in Prometheus text, e.g. `name{a="b"} 3`. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}

describe('ops HTTP endpoint', () => {
  it('binds to loopback by default and answers /healthz with 200', async () => {
    const {base} = await start()
    const res = await call(base, 'GET', '/healthz')
    expect(res.status).toBe(200)
    expect(JSON.parse(res.body)).toEqual({status: 'alive'})
  })

  it('/readyz is 200 ready when every check passes', async () => {
    const {base} = await start({checks: async () => [{name: 'upstream', ok: true, detail: 'reachable'}]})
    const res = await call(base, 'GET', '/readyz')
    expect(res.status).toBe(200)
    expect(JSON.parse(res.body)).toEqual({status: 'ready'})
  })

  it('/readyz is 200 degraded when only a degradesOnly check fails, naming it', async () => {
    const {base} = await start({
      checks: async () => [
        {name: 'upstream', ok: true, detail: 'reachable'},
        {name: 'bucket', ok: false, degradesOnly: true, detail: 'PUT s3://audit/probe: connection refused'},
      ],
    })
    const res = await call(base, 'GET', '/readyz')
    expect(res.status).toBe(200)
    expect(JSON.parse(res.body)).toEqual({
      status: 'degraded',
      checks: [{name: 'bucket', detail: 'PUT s3://audit/probe: connection refused', degradesOnly: true}],
    })
  })

  it('/readyz is 503 not-ready when a hard check fails, naming every failing check', async () => {
    const {base, logs} = await start({
      checks: async () => [
        {name: 'idp-keys', ok: false, detail: 'JWKS from https://login.example.com not loaded: ECONNREFUSED'},
        {name: 'bucket', ok: false, degradesOnly: true, detail: 'not writable'},
        {name: 'upstream', ok: true, detail: 'reachable'},
      ],
    })
    const res = await call(base, 'GET', '/readyz')
    expect(res.status).toBe(503)
    const body = JSON.parse(res.body)
    expect(body.status).toBe('not-ready')
    expect(body.checks.map((c: {name: string}) => c.name)).toEqual(['idp-keys', 'bucket'])
    expect(body.checks[0].detail).toContain('ECONNREFUSED')
    expect(logs.join('\n')).toContain('idp-keys')
  })

  it('logs a not-ready /readyz once however often it is asked, then how many more times it answered so', async () => {
    let endOfInterval: (() => void) | undefined
    let attempt = 0
    const {base, logs} = await start({
      checks: async () => [{name: 'idp-keys', ok: false, detail: `JWKS not loaded (attempt ${++attempt})`}],
      logRepeats: {intervalMs: 24 * 3600_000, schedule: (fn) => ((endOfInterval = fn), () => {})},
    })
    for (let i = 0; i < 50; i++) expect((await call(base, 'GET', '/readyz')).status).toBe(503)
    expect(logs).toEqual(['warn readiness not-ready: idp-keys: JWKS not loaded (attempt 1)'])
    endOfInterval?.()
    expect(logs).toEqual(['warn readiness not-ready: idp-keys: JWKS not loaded (attempt 1)', expect.stringMatching(/^warn 49 more like this in the last \S+ \(not logged one by one\); the last: readiness not-ready: idp-keys: JWKS not loaded \(attempt 50\)$/)])
  })

  it('/readyz is 503 when the checks throw or never finish', async () => {
    const throwing = await start({checks: async () => Promise.reject(new Error('bucket client not built'))})
    const a = await call(throwing.base, 'GET', '/readyz')
    expect(a.status).toBe(503)
    expect(JSON.parse(a.body).checks[0].detail).toContain('bucket client not built')

    const hanging = await start({checks: () => new Promise(() => {}), readinessTimeoutMs: 50})
    const b = await call(hanging.base, 'GET', '/readyz')
    expect(b.status).toBe(503)
    expect(JSON.parse(b.body).checks[0].detail).toContain('did not finish within 50 ms')
  })

  it('unknown paths are 404 and other methods 405 with Allow: GET', async () => {
    const {base} = await start()
    expect((await call(base, 'GET', '/')).status).toBe(404)
    expect((await call(base, 'GET', '/metrics/../admin')).status).toBe(404)
    expect((await call(base, 'GET', '/healthz/')).status).toBe(404)
    for (const method of ['POST', 'PUT', 'DELETE', 'HEAD']) {
      const res = await call(base, method, '/readyz')
      expect(res.status, method).toBe(405)
      expect(res.headers.allow).toBe('GET')
    }
    // a query string does not change which endpoint answers
    expect((await call(base, 'GET', '/healthz?verbose=1')).status).toBe(200)
  })

  it('answers 400 to a request target that is no URL path, and logs nothing for it (anyone who reaches the port can send one)', async () => {
    const {base, logs} = await start()
    const port = Number(new URL(base).port)
    for (const target of ['//[', '//x:99999/healthz', 'http://[/readyz', '/%E0', '/readyz%']) {
      const status = await new Promise<string>((resolve) => {
        const s = connect(port, '127.0.0.1', () => s.write(`GET ${target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`))
        let got = ''
        s.on('data', (d: Buffer) => (got += d.toString('latin1')))
        s.on('error', () => {})
        s.on('close', () => resolve(got.split('\r\n')[0]!))
      })
      expect(status, target).toBe('HTTP/1.1 400 Bad Request')
    }
    expect(logs).toEqual([])
    expect((await call(base, 'GET', '/healthz')).status).toBe(200)
  })

  it('/metrics serves the counters the server reported and the gauges read at scrape time', async () => {
    let gauges: GatewayGauges = {approvalsPending: 2, shippingBacklogBytes: 4096, upstreamSessionsInUse: 3}
    const {base, metrics} = await start({gauges: () => gauges})
    metrics.sessionOpened('prod')
    metrics.sessionOpened('prod')
    metrics.sessionOpened('staging')
    metrics.sessionClosed('prod')
    metrics.statement('prod', 'allow')
    metrics.statement('prod', 'allow')
    metrics.statement('prod', 'deny')
    metrics.statement('staging', 'hold')
    metrics.valuesMasked('prod', 7)
    metrics.signInFailed('token-expired')
    metrics.signInFailed('token-expired')
    metrics.signInFailed('not-allowed')

    const res = await call(base, 'GET', '/metrics')
    expect(res.status).toBe(200)
    expect(String(res.headers['content-type'])).toContain('text/plain')
    const text = res.body
    expect(sample(text, 'dbgate_gateway_sessions_open{target="prod"}')).toBe(1)
    expect(sample(text, 'dbgate_gateway_sessions_open{target="staging"}')).toBe(1)
    expect(sample(text, 'dbgate_gateway_statements_total{target="prod",decision="allow"}')).toBe(2)
    expect(sample(text, 'dbgate_gateway_statements_total{target="prod",decision="deny"}')).toBe(1)
    expect(sample(text, 'dbgate_gateway_statements_total{target="staging",decision="hold"}')).toBe(1)
    expect(sample(text, 'dbgate_gateway_values_masked_total{target="prod"}')).toBe(7)
    expect(sample(text, 'dbgate_gateway_sign_in_failures_total{reason="token-expired"}')).toBe(2)
    expect(sample(text, 'dbgate_gateway_sign_in_failures_total{reason="not-allowed"}')).toBe(1)
    // reasons that never happened are exported at 0, not missing
    expect(sample(text, 'dbgate_gateway_sign_in_failures_total{reason="token-signature"}')).toBe(0)
    expect(sample(text, 'dbgate_gateway_approvals_pending')).toBe(2)
    expect(sample(text, 'dbgate_gateway_shipping_backlog_bytes')).toBe(4096)
    expect(sample(text, 'dbgate_gateway_upstream_sessions_in_use')).toBe(3)
    // process metrics are there, under the gateway's prefix
    expect(text).toMatch(/^dbgate_gateway_process_resident_memory_bytes \d+/m)
    expect(text).toMatch(/^dbgate_gateway_nodejs_eventloop_lag_seconds /m)

    // the gauges are read at each scrape, not cached from the first one
    gauges = {approvalsPending: 0, shippingBacklogBytes: 0, upstreamSessionsInUse: 1}
    const again = (await call(base, 'GET', '/metrics')).body
    expect(sample(again, 'dbgate_gateway_approvals_pending')).toBe(0)
    expect(sample(again, 'dbgate_gateway_upstream_sessions_in_use')).toBe(1)
  })

  it('a session closed more often than opened does not make the gauge negative', async () => {
    const {base, metrics} = await start()
    metrics.sessionOpened('prod')
    metrics.sessionClosed('prod')
    metrics.sessionClosed('prod')
    expect(sample((await call(base, 'GET', '/metrics')).body, 'dbgate_gateway_sessions_open{target="prod"}')).toBe(0)
  })

  it('two gateways in one process keep separate metrics (own registry, not the global one)', async () => {
    const a = await start()
    const b = await start()
    a.metrics.statement('prod', 'deny')
    expect(sample((await call(a.base, 'GET', '/metrics')).body, 'dbgate_gateway_statements_total{target="prod",decision="deny"}')).toBe(1)
    expect(sample((await call(b.base, 'GET', '/metrics')).body, 'dbgate_gateway_statements_total{target="prod",decision="deny"}')).toBeUndefined()
  })

  it('a failing gauges callback answers /metrics with 500 and logs why', async () => {
    const {base, logs} = await start({
      gauges: () => {
        throw new Error('spool directory unreadable')
      },
    })
    const res = await call(base, 'GET', '/metrics')
    expect(res.status).toBe(500)
    expect(logs.join('\n')).toContain('spool directory unreadable')
    expect((await call(base, 'GET', '/healthz')).status).toBe(200)
  })
})

/**
 * The ops port is plain HTTP that anyone who reaches it may open (in a cluster, every pod). With
 * Node's defaults a connection that sends nothing was never closed, and one that sent its headers a
 * byte at a time was held for a minute, with no cap: enough of them took the process's file limit,
 * which the PostgreSQL listener shares, and the liveness probe failed with it.
 */
describe('ops HTTP endpoint: connections that hold a socket', () => {
  const connectFrom = (port: number, localAddress: string) => {
    const s = connect({port, host: '127.0.0.1', localAddress})
    const state = {closed: false, answer: ''}
    s.on('error', () => {})
    s.on('data', (d: Buffer) => (state.answer += d.toString('latin1')))
    s.on('close', () => (state.closed = true))
    return {s, state}
  }
  const until = async (cond: () => boolean, ms: number) => {
    const end = Date.now() + ms
    while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 50))
    return cond()
  }

  it('caps the connections of one address, closes the silent ones, and keeps answering probes from elsewhere', async () => {
    const {base, logs} = await start({readinessTimeoutMs: 500})
    const port = Number(new URL(base).port)
    const flood = Array.from({length: 40}, () => connectFrom(port, '127.0.0.2'))
    // Past the share of one address, closed at once; the probe from another address is answered.
    expect(await until(() => flood.filter((c) => c.state.closed).length >= 24, 3000)).toBe(true)
    expect((await call(base, 'GET', '/healthz')).status).toBe(200)
    expect(logs.filter((l) => l.includes('ops endpoint: refused a connection from'))).toHaveLength(1)
    // The ones within the share, silent, are closed too, once idle longer than any answer takes.
    expect(await until(() => flood.every((c) => c.state.closed), 9000)).toBe(true)
    flood.forEach((c) => c.s.destroy())
  }, 15_000)

  it('answers 408 and closes a connection whose request comes a byte at a time', async () => {
    const {base} = await start({readinessTimeoutMs: 500})
    const c = connectFrom(Number(new URL(base).port), '127.0.0.3')
    c.s.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ')
    const drip = setInterval(() => c.s.write('a'), 100)
    try {
      expect(await until(() => c.state.closed, 9000)).toBe(true)
    } finally {
      clearInterval(drip)
      c.s.destroy()
    }
    expect(c.state.answer).toMatch(/^HTTP\/1\.1 408/)
  }, 15_000)
})
