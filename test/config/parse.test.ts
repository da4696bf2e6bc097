import {readFileSync} from 'node:fs'
import {fileURLToPath} from 'node:url'
import {inspect} from 'node:util'
import {describe, expect, it} from 'vitest'
import {parseConfigText} from '../../src/config/parse.js'
import {parseSecretSource} from '../../src/config/secret-ref.js'
import {closest} from '../../src/config/suggest.js'
import {parseDuration, parseSize} from '../../src/config/units.js'

const full = `
identity:
  issuer: https://login.example.com/realms/acme
  clientId: dbgate-cli
  clientSecret: env:DBGATE_CLIENT_SECRET
  groupsClaim: realm_access.roles
  verify: access_token
  audience: dbgate-api
  clockSkew: 30s
bucket:
  url: s3://acme-audit/dbgate
  endpoint: http://127.0.0.1:9000
  region: us-east-1
  forcePathStyle: true
  objectLock: {mode: COMPLIANCE, days: 365}
recording:
  previewRows: 0
tunnel:
  maxMessageSize: 64MiB
  maxStatementSize: 262144
  authTimeout: 10s
  maxClientConnections: 50
targets:
  prod:
    host: db.internal
    port: 6432
    database: app
    user: app_rw
    password: file:secrets/prod-pg
    tls: verify-full
    tlsCa: certs/ca.pem
    allow: [engineering, dba]
    reviewers: dba
    policy: none
    rules:
      - id: no-ddl
        match: {class: ddl}
        action: require_approval
        reason: schema changes need a DBA
      - match: {class: write, command: [delete, update], where: none, tables: "public.*", groups: [engineering]}
        action: deny
      - match: {functions: ["pg_*"]}
        action: warn
    masking:
      unmask: [pii-readers]
      mask: ["public.*.notes"]
      unmaskColumns: [public.users.country]
      strategies: {email: partial, card: null, token: hash}
      onUntraceable: deny
    approvals:
      expiry: 2h
      windows: true
      webhook: https://hooks.example.com/dbgate
    tunnel:
      maxUpstreamSessions: 5
      upstreamQueueTimeout: 2m
`

describe('parseConfigText', () => {
  it('reads every key, converts units and resolves paths against the file', () => {
    const {config, warnings} = parseConfigText(full, '/etc/dbgate/dbgate.yaml')
    expect(warnings).toEqual([])
    expect(config.identity).toEqual({
      issuer: 'https://login.example.com/realms/acme',
      clientId: 'dbgate-cli',
      clientSecret: {kind: 'env', name: 'DBGATE_CLIENT_SECRET'},
      scopes: ['openid', 'profile', 'email', 'offline_access'],
      groupsClaim: 'realm_access.roles',
      audience: 'dbgate-api',
      verify: 'access_token',
      clockSkewMs: 30_000,
    })
    expect(config.bucket).toEqual({url: 's3://acme-audit/dbgate', endpoint: 'http://127.0.0.1:9000', region: 'us-east-1', forcePathStyle: true, objectLock: {mode: 'COMPLIANCE', days: 365}})
    expect(config.recording).toEqual({previewRows: 0})
    expect(config.tunnel).toEqual({maxMessageSize: 64 * 1024 * 1024, maxStatementSize: 262_144, authTimeoutMs: 10_000, maxClientConnections: 50, maxUpstreamSessions: 20, upstreamQueueTimeoutMs: 30_000, changeWaitMs: 10_000})
    expect(Object.keys(config.targets)).toEqual(['prod'])
    expect(config.targets.prod).toEqual({
      name: 'prod',
      host: 'db.internal',
      port: 6432,
      database: 'app',
      user: 'app_rw',
      password: {kind: 'file', path: '/etc/dbgate/secrets/prod-pg'},
      tls: 'verify-full',
      tlsCa: '/etc/dbgate/certs/ca.pem',
      connectTimeoutMs: 10_000,
      allow: ['engineering', 'dba'],
      reviewers: ['dba'],
      policy: 'none',
      rules: [
        {id: 'no-ddl', match: {class: ['ddl']}, action: 'require_approval', reason: 'schema changes need a DBA', source: {file: '/etc/dbgate/dbgate.yaml', line: 36, column: 9}},
        {
          id: 'prod.rules[1]',
          match: {class: ['write'], command: ['delete', 'update'], where: 'none', tables: ['public.*'], groups: ['engineering']},
          action: 'deny',
          source: {file: '/etc/dbgate/dbgate.yaml', line: 40, column: 9},
        },
        {id: 'prod.rules[2]', match: {functions: ['pg_*']}, action: 'warn', source: {file: '/etc/dbgate/dbgate.yaml', line: 42, column: 9}},
      ],
      masking: {
        unmask: ['pii-readers'],
        mask: ['public.*.notes'],
        unmaskColumns: ['public.users.country'],
        strategies: {email: 'partial', card: 'null', token: 'hash'},
        onUntraceable: 'deny',
      },
      approvals: {expiryMs: 2 * 3_600_000, windows: true, webhook: 'https://hooks.example.com/dbgate'},
      tunnel: {maxMessageSize: 64 * 1024 * 1024, maxStatementSize: 262_144, authTimeoutMs: 10_000, maxClientConnections: 50, maxUpstreamSessions: 5, upstreamQueueTimeoutMs: 120_000, changeWaitMs: 10_000},
    })
    // The target's own keys (maxUpstreamSessions, upstreamQueueTimeout) sit over the top-level ones.
  })

  it('applies every default to a minimal file', () => {
    const text = 'targets:\n  dev:\n    host: localhost\n    database: app\n    user: dev\n'
    const {config, warnings} = parseConfigText(text, 'dbgate.yaml', {env: {}, homeDir: '/home/ana'})
    expect(warnings).toEqual([])
    expect(config.identity).toBeUndefined()
    expect(config.bucket).toEqual({url: 'file:///home/ana/.local/share/dbgate/bucket'})
    expect(config.recording).toEqual({previewRows: 5})
    const tunnelDefaults = {maxMessageSize: 1024 ** 3, maxStatementSize: 1024 ** 2, authTimeoutMs: 60_000, maxClientConnections: 100, maxUpstreamSessions: 20, upstreamQueueTimeoutMs: 30_000, changeWaitMs: 10_000}
    expect(config.tunnel).toEqual(tunnelDefaults)
    expect(config.targets.dev).toEqual({
      name: 'dev',
      host: 'localhost',
      port: 5432,
      database: 'app',
      user: 'dev',
      tls: 'prefer',
      connectTimeoutMs: 10_000,
      reviewers: [],
      policy: 'default',
      rules: [],
      masking: {unmask: [], mask: [], unmaskColumns: [], strategies: {}, onUntraceable: 'mask'},
      approvals: {expiryMs: 15 * 60_000, windows: false},
      tunnel: tunnelDefaults,
    })
  })

  it('defaults identity scopes, groups claim, audience, verification and skew', () => {
    const text = 'identity:\n  issuer: http://127.0.0.1:8080\n  clientId: dbgate-cli\ntargets:\n  dev: {host: localhost, database: app, user: dev}\n'
    const {config} = parseConfigText(text, 'dbgate.yaml')
    expect(config.identity).toEqual({
      issuer: 'http://127.0.0.1:8080',
      clientId: 'dbgate-cli',
      scopes: ['openid', 'profile', 'email', 'offline_access'],
      groupsClaim: 'groups',
      audience: 'dbgate-cli',
      verify: 'id_token',
      clockSkewMs: 60_000,
    })
  })

  it('puts the default bucket under XDG_DATA_HOME when it is set', () => {
    const {config} = parseConfigText('targets:\n  dev: {host: h, database: d, user: u}\n', 'dbgate.yaml', {env: {XDG_DATA_HOME: '/data'}, homeDir: '/home/ana'})
    expect(config.bucket.url).toBe('file:///data/dbgate/bucket')
  })

  it('accepts the bucket as a string', () => {
    const {config} = parseConfigText('bucket: file:///var/lib/dbgate/audit\ntargets:\n  dev: {host: h, database: d, user: u}\n', 'dbgate.yaml')
    expect(config.bucket).toEqual({url: 'file:///var/lib/dbgate/audit'})
  })

  it('follows YAML anchors and aliases', () => {
    const text = 'targets:\n  a: &base {host: h, database: d, user: u, reviewers: [dba]}\n  b: *base\n'
    const {config} = parseConfigText(text, 'dbgate.yaml')
    expect(config.targets.b).toMatchObject({name: 'b', host: 'h', reviewers: ['dba']})
  })

  it('keeps target lookups off Object.prototype', () => {
    const {config} = parseConfigText('targets:\n  dev: {host: h, database: d, user: u}\n', 'dbgate.yaml')
    expect(config.targets.constructor).toBeUndefined()
    expect(config.targets.toString).toBeUndefined()
  })

  it('keeps an inline password out of JSON and inspection but usable', () => {
    const {config} = parseConfigText('targets:\n  dev: {host: h, database: d, user: u, password: "pa55-Word!"}\n', 'dbgate.yaml')
    const password = config.targets.dev!.password!
    expect(password.kind === 'inline' && password.value).toBe('pa55-Word!')
    expect(JSON.stringify(config)).not.toContain('pa55-Word!')
    expect(inspect(config, {depth: 10})).not.toContain('pa55-Word!')
  })
})

describe('units', () => {
  it.each([
    ['30s', 30_000],
    ['15m', 900_000],
    ['2h', 7_200_000],
    ['1d', 86_400_000],
    [45, 45_000],
    ['45', 45_000],
    ['1.5h', undefined],
    ['15 minutes', undefined],
    [-1, undefined],
  ] as const)('duration %j is %j ms', (input, ms) => {
    expect(parseDuration(input)).toBe(ms)
  })

  it.each([
    ['1GiB', 1024 ** 3],
    ['1MiB', 1024 ** 2],
    ['64KiB', 65_536],
    ['100B', 100],
    [4096, 4096],
    ['1GB', undefined],
    ['1.5MiB', undefined],
  ] as const)('size %j is %j bytes', (input, bytes) => {
    expect(parseSize(input)).toBe(bytes)
  })
})

describe('suggestions', () => {
  it.each([
    ['hots', ['host', 'port'], 'host'],
    ['client_id', ['clientId', 'clientSecret'], 'clientId'],
    ['reviewer', ['reviewers', 'rules'], 'reviewers'],
    ['colour', ['host', 'port', 'tls'], undefined],
  ] as const)('%s suggests %j', (input, candidates, expected) => {
    expect(closest(input, candidates)).toBe(expected)
  })
})

describe('parseSecretSource', () => {
  it.each([
    ['env:PGPASSWORD', {kind: 'env', name: 'PGPASSWORD'}],
    ['file:/run/secrets/pg', {kind: 'file', path: '/run/secrets/pg'}],
    ['file:///run/secrets/pg', {kind: 'file', path: '/run/secrets/pg'}],
    ['file:pg.txt', {kind: 'file', path: '/base/pg.txt'}],
    ['keychain:prod', {kind: 'keychain', name: 'prod'}],
  ] as const)('%s', (text, ref) => {
    expect(parseSecretSource(text, '/base')).toEqual({ok: true, ref})
  })

  it('treats anything else as the secret itself', () => {
    const parsed = parseSecretSource('hunter2')
    expect(parsed.ok && parsed.ref.kind).toBe('inline')
  })
})

describe('docs/configuration.md', () => {
  const docs = readFileSync(fileURLToPath(new URL('../../docs/configuration.md', import.meta.url)), 'utf8')
  const yamlAfter = (marker: string) => {
    const start = docs.indexOf('```yaml\n', docs.indexOf(marker))
    return docs.slice(start + 8, docs.indexOf('```', start + 8))
  }

  it.each(['## A minimal file', 'A complete file:'])('the example after "%s" is valid and has no warnings', (marker) => {
    const {warnings} = parseConfigText(yamlAfter(marker), '/etc/dbgate/dbgate.yaml')
    expect(warnings).toEqual([])
  })

  it('documents every default the code applies', () => {
    const {config} = parseConfigText(yamlAfter('## A minimal file'), 'dbgate.yaml')
    const prod = config.targets.prod!
    expect(docs).toContain(`| \`port\` | integer 1–65535 | \`${prod.port}\` |`)
    expect(docs).toContain(`| \`tls\` | \`disable\` \\| \`prefer\` \\| \`require\` \\| \`verify-full\` | \`${prod.tls}\` |`)
    expect(docs).toContain(`| \`previewRows\` | integer ≥ 0 | \`${config.recording.previewRows}\` |`)
    expect(docs).toContain(`| \`expiry\` | duration, at least \`1s\` | \`${prod.approvals.expiryMs / 60_000}m\` |`)
  })
})
