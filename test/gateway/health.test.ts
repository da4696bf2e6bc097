import {mkdtemp, readdir, rm, writeFile} from 'node:fs/promises'
import net from 'node:net'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {openBucket} from '../../src/bucket/index.js'
import {parseConfigText} from '../../src/config/parse.js'
import {bucketCheck, spoolCheck, upstreamChecks} from '../../src/gateway/health.js'
import {readinessReport} from '../../src/gateway/ops-http.js'

const listening = (): Promise<net.Server> =>
  new Promise((resolve) => {
    const s = net.createServer((c) => c.destroy()).listen(0, '127.0.0.1', () => resolve(s))
  })
const portOf = (s: net.Server) => (s.address() as net.AddressInfo).port

/** The checks behind /readyz, each against a real socket or a real (file) bucket. */
describe('gateway readiness checks', () => {
  let up: net.Server
  let dead: number
  let dir: string
  beforeAll(async () => {
    up = await listening()
    const gone = await listening()
    dead = portOf(gone)
    await new Promise((r) => gone.close(r))
    dir = await mkdtemp(path.join(tmpdir(), 'dbgate-health-'))
  })
  afterAll(async () => {
    up?.close()
    await rm(dir, {recursive: true, force: true})
  })

  it('only degrades for an unreachable target while another is reachable, and is not ready when none is', async () => {
    const one = await upstreamChecks([
      {name: 'app', host: '127.0.0.1', port: portOf(up)},
      {name: 'down', host: '127.0.0.1', port: dead},
    ])
    expect(readinessReport(one)).toMatchObject({status: 'degraded', checks: [{name: 'upstream:down', degradesOnly: true}]})
    expect(one.find((c) => c.name === 'upstream:down')!.detail).toMatch(new RegExp(`127\\.0\\.0\\.1:${dead}: .*ECONNREFUSED`))
    const none = await upstreamChecks([{name: 'down', host: '127.0.0.1', port: dead}])
    expect(readinessReport(none)).toMatchObject({status: 'not-ready', checks: [{name: 'upstream:down', degradesOnly: false}]})
  })

  it('says the bucket is writable, and only degrades when it is not or when it hangs', async () => {
    expect(await bucketCheck(openBucket(`file://${path.join(dir, 'bucket')}`), 'gw-1')).toMatchObject({name: 'bucket', ok: true})
    // A bucket directory that is a file: every write fails.
    await writeFile(path.join(dir, 'not-a-dir'), 'x')
    const broken = await bucketCheck(openBucket(`file://${path.join(dir, 'not-a-dir')}`), 'gw-1')
    expect(broken).toMatchObject({name: 'bucket', ok: false, degradesOnly: true})
    expect(broken.detail).toMatch(/sessions continue and recordings wait in the spool/)
    const hanging = {url: 's3://hangs', put: () => new Promise(() => {})} as never
    const slow = await bucketCheck(hanging, 'gw-1', 50)
    expect(slow).toMatchObject({ok: false, degradesOnly: true})
    expect(slow.detail).toMatch(/did not answer within 50 ms/)
    expect(readinessReport([slow]).status).toBe('degraded')
  })
})

describe('the spool readiness check', () => {
  it('is ready with a spool it can write and sync, leaving nothing in it, and not ready with one it cannot', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'dbgate-spool-health-'))
    try {
      const spool = path.join(dir, 'spool')
      expect(await spoolCheck(spool, 'gw-1')).toMatchObject({name: 'spool', ok: true, detail: `${spool} writable`})
      expect(await readdir(spool)).toEqual([])
      // A spool whose volume is gone (here a file where its directory should be): every session's log would fail.
      await writeFile(path.join(dir, 'gone'), 'x')
      const broken = await spoolCheck(path.join(dir, 'gone', 'spool'), 'gw-1')
      expect(broken).toMatchObject({name: 'spool', ok: false, degradesOnly: false})
      expect(broken.detail).toMatch(/ENOTDIR|EEXIST.*; sessions are refused until their recordings can be written/)
      expect(readinessReport([broken]).status).toBe('not-ready')
    } finally {
      await rm(dir, {recursive: true, force: true})
    }
  })
})

describe('gateway operations settings', () => {
  const base = ['server:', '  tls: {cert: tls.crt, key: tls.key}', 'targets:', '  prod: {host: db.internal, database: app, user: app_rw, allow: [dba]}']
  const server = (extra: string[]) => parseConfigText([...base.slice(0, 2), ...extra.map((l) => `  ${l}`), ...base.slice(2)].join('\n'), '/etc/dbgate/gateway.yaml', {env: {HOME: '/home/gw'}}).config.server!

  it('defaults to an ops endpoint on 127.0.0.1:9187, a 30 s drain and info logs', () => {
    expect(server([])).toMatchObject({ops: {host: '127.0.0.1', port: 9187}, drainTimeoutMs: 30_000, logLevel: 'info'})
  })

  it('reads ops: off, a drain timeout and a log level', () => {
    expect(server(['ops: off', 'drainTimeout: 2m', 'log: {level: debug}'])).toMatchObject({ops: null, drainTimeoutMs: 120_000, logLevel: 'debug'})
    expect(server(['ops: 0.0.0.0:9187'])).toMatchObject({ops: {host: '0.0.0.0', port: 9187}})
  })

  it('points at a misspelt log level', () => {
    let issues: {keyPath: string; message: string}[] = []
    try {
      server(['log: {level: verbose}'])
    } catch (error) {
      issues = (error as {issues: {keyPath: string; message: string}[]}).issues
    }
    expect(issues).toEqual([expect.objectContaining({keyPath: 'server.log.level', message: expect.stringMatching(/expected one of debug, info, warn, error, got "verbose"/)})])
  })
})
