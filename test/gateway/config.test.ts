import {describe, expect, it} from 'vitest'
import {ConfigError} from '../../src/config/errors.js'
import {parseConfigText} from '../../src/config/parse.js'

const target = ['targets:', '  prod:', '    host: db.internal', '    database: app', '    user: app_rw', '    allow: [dba]']

function issues(lines: string[]) {
  try {
    parseConfigText(lines.join('\n') + '\n', '/etc/dbgate/gateway.yaml', {env: {HOME: '/home/gw'}})
  } catch (error) {
    if (error instanceof ConfigError) return error.issues.map(({line, keyPath, message, fix}) => ({line, keyPath, message, fix}))
    throw error
  }
  return []
}

/** The gateway's `server` section and a client's `gateway` section: checked like the rest of the file. */
describe('gateway configuration', () => {
  it('reads a server section with its documented defaults', () => {
    const {config} = parseConfigText(['server:', '  tls: {cert: tls.crt, key: tls.key}', ...target].join('\n'), '/etc/dbgate/gateway.yaml', {env: {HOME: '/home/gw'}})
    expect(config.server).toMatchObject({
      listen: {host: '0.0.0.0', port: 6432},
      tls: {cert: '/etc/dbgate/tls.crt', key: '/etc/dbgate/tls.key'},
      maxSessionDurationMs: 12 * 3600_000,
      sessionOutlivesToken: false,
      pipelineIdleMs: 30_000,
      maxSessionsPerPerson: 16,
      signInTimeoutMs: 10_000,
      maxPendingSignIns: 512,
      maxPendingSignInsPerAddress: 64,
    })
  })

  it('points at the line of a per-address cap on connections not signed in that exceeds the total', () => {
    expect(issues(['server:', '  tls: {cert: a, key: b}', '  maxPendingSignIns: 8', '  maxPendingSignInsPerAddress: 20', ...target])).toEqual([
      {
        line: 4,
        keyPath: 'server.maxPendingSignInsPerAddress',
        message: 'server.maxPendingSignInsPerAddress (20) is larger than server.maxPendingSignIns (8), so one address could hold every connection not yet signed in',
        fix: 'lower server.maxPendingSignInsPerAddress to at most 8, or raise server.maxPendingSignIns',
      },
    ])
    expect(issues(['server:', '  tls: {cert: a, key: b}', '  maxSessionsPerPerson: 0', '  signInTimeout: 0s', ...target])).toEqual([
      expect.objectContaining({line: 3, keyPath: 'server.maxSessionsPerPerson'}),
      expect.objectContaining({line: 4, keyPath: 'server.signInTimeout', message: expect.stringMatching(/at least 1s/)}),
    ])
  })

  it('reads the clients whose tokens the identity section accepts, and points at a bad one', () => {
    const {config} = parseConfigText(['identity:', '  issuer: https://login.example.com', '  clientId: dbgate-cli', '  allowedClients: [ci-runner]', ...target].join('\n'), '/etc/dbgate/gateway.yaml', {env: {HOME: '/home/gw'}})
    expect(config.identity).toMatchObject({clientId: 'dbgate-cli', allowedClients: ['ci-runner']})
    expect(issues(['identity:', '  issuer: https://login.example.com', '  clientId: dbgate-cli', '  allowedClients: ["ci runner"]', ...target])).toEqual([
      expect.objectContaining({line: 4, keyPath: 'identity.allowedClients[0]', message: expect.stringMatching(/an OAuth client id/)}),
    ])
  })

  it('reads the peers a cancel request is passed on to, and points at one without a port', () => {
    const {config} = parseConfigText(['server:', '  tls: {cert: a, key: b}', '  peers: [gw-peers.dbgate.svc:5432, "[::1]:6432"]', ...target].join('\n'), '/etc/dbgate/gateway.yaml', {env: {HOME: '/home/gw'}})
    expect(config.server?.peers).toEqual([{host: 'gw-peers.dbgate.svc', port: 5432}, {host: '::1', port: 6432}])
    expect(issues(['server:', '  tls: {cert: a, key: b}', '  peers:', '    - gw-a:6432', '    - gw-b', ...target])).toEqual([
      expect.objectContaining({line: 5, keyPath: 'server.peers[1]', message: expect.stringContaining('expected host:port such as gw-peers.dbgate.svc:6432, got "gw-b"')}),
    ])
  })

  it('points at the line and says how to write a listen address', () => {
    expect(issues(['server:', '  listen: 6432', '  tls: {cert: a, key: b}', ...target])).toEqual([
      {line: 2, keyPath: 'server.listen', message: 'expected host:port such as 0.0.0.0:6432, got 6432', fix: 'write host:port such as 0.0.0.0:6432'},
    ])
  })

  it('explains a listen address without a port', () => {
    expect(issues(['server:', '  listen: gw.internal', '  tls: {cert: a, key: b}', ...target])).toEqual([
      {line: 2, keyPath: 'server.listen', message: 'expected host:port such as 0.0.0.0:6432, got "gw.internal"', fix: 'write the address and port, e.g. 0.0.0.0:6432 (0.0.0.0 listens on every interface)'},
    ])
  })

  it('requires the TLS files: there is no plaintext gateway', () => {
    expect(issues(['server:', '  listen: 0.0.0.0:6432', ...target])).toEqual([expect.objectContaining({line: 1, keyPath: 'server.tls', message: 'missing required key "tls" in server'})])
  })

  it('lets a client name a gateway instead of targets, and not both', () => {
    const {config} = parseConfigText(['gateway:', '  address: gw.internal:6432'].join('\n'), '/home/a/dbgate.yaml', {env: {HOME: '/home/a'}})
    expect(config.gateway).toEqual({address: {host: 'gw.internal', port: 6432}, api: {host: 'gw.internal', port: 8443}})
    expect(config.targets).toEqual({})
    expect(issues(['gateway:', '  address: gw.internal:6432', ...target])).toEqual([expect.objectContaining({keyPath: 'targets', message: expect.stringMatching(/names a gateway has no targets of its own/)})])
  })
})

describe('gateway TLS files', () => {
  it('names the server.tls key and the file when the certificate or key cannot be used', async () => {
    const {loadTlsContext} = await import('../../src/gateway/gateway.js')
    await expect(loadTlsContext({cert: '/nonexistent/tls.crt', key: '/nonexistent/tls.key'})).rejects.toThrow(/server\.tls\.(cert|key) \(\/nonexistent\/tls\.(crt|key)\): no such file/)
    const notPem = new URL(import.meta.url).pathname
    await expect(loadTlsContext({cert: notPem, key: notPem})).rejects.toThrow(/do not make a usable TLS identity/)
  })
})
