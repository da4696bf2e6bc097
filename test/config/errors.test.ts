import {describe, expect, it} from 'vitest'
import {ConfigError, CONFIG_INVALID, formatIssue} from '../../src/config/errors.js'
import {parseConfigText} from '../../src/config/parse.js'
import type {ConfigIssue} from '../../src/config/types.js'

/** The ConfigError parseConfigText throws for `lines`; fails the test if it does not throw one. */
function rejection(lines: string[]): ConfigError {
  let caught: unknown
  try {
    parseConfigText(lines.join('\n') + '\n', 'dbgate.yaml')
  } catch (err) {
    caught = err
  }
  expect(caught).toBeInstanceOf(ConfigError)
  return caught as ConfigError
}

type Expected = Pick<ConfigIssue, 'line' | 'column' | 'keyPath' | 'kind' | 'message' | 'fix'>

function pick(i: ConfigIssue): Expected {
  return {line: i.line, column: i.column, keyPath: i.keyPath, kind: i.kind, message: i.message, fix: i.fix}
}

const prodHead = ['targets:', '  prod:', '    host: db.internal', '    database: app', '    user: app_rw']

const cases: {name: string; yaml: string[]; issues: Expected[]}[] = [
  {
    name: 'unknown key with a suggestion, plus the required key it replaced',
    yaml: ['targets:', '  prod:', '    hots: db.internal', '    database: app', '    user: app_rw'],
    issues: [
      {line: 2, column: 3, keyPath: 'targets.prod.host', kind: 'missing-key', message: 'missing required key "host" in targets.prod', fix: 'add "host: db.internal"'},
      {line: 3, column: 5, keyPath: 'targets.prod.hots', kind: 'unknown-key', message: 'unknown key "hots" in targets.prod; did you mean "host"?', fix: 'rename it to "host"'},
    ],
  },
  {
    name: 'unknown key with nothing close lists the allowed keys',
    yaml: ['recording:', '  zebra: 1', ...prodHead],
    issues: [{line: 2, column: 3, keyPath: 'recording.zebra', kind: 'unknown-key', message: 'unknown key "zebra" in recording', fix: 'remove it; allowed keys are: previewRows, trustedSigners'}],
  },
  {
    name: 'unknown top-level key',
    yaml: ['target:', '  prod: {}', ...prodHead],
    issues: [{line: 1, column: 1, keyPath: 'target', kind: 'unknown-key', message: 'unknown key "target" in the top level; did you mean "targets"?', fix: 'rename it to "targets"'}],
  },
  {
    name: 'wrong type: a word where a port number belongs',
    yaml: [...prodHead, '    port: abc'],
    issues: [{line: 6, column: 11, keyPath: 'targets.prod.port', kind: 'type', message: 'expected an integer between 1 and 65535, got "abc"', fix: 'write an integer between 1 and 65535'}],
  },
  {
    name: 'integer out of range',
    yaml: [...prodHead, '    port: 70000'],
    issues: [{line: 6, column: 11, keyPath: 'targets.prod.port', kind: 'range', message: 'expected an integer between 1 and 65535, got 70000', fix: 'write an integer between 1 and 65535'}],
  },
  {
    name: 'wrong type: a list where a map of targets belongs',
    yaml: ['targets: [prod]'],
    issues: [{line: 1, column: 10, keyPath: 'targets', kind: 'type', message: 'expected a map of names (each value a map), got a list', fix: 'write a map, e.g. "prod: {…}"'}],
  },
  {
    name: 'empty value',
    yaml: ['targets:', '  prod:', '    host:', '    database: app', '    user: app_rw'],
    issues: [{line: 3, column: 5, keyPath: 'targets.prod.host', kind: 'type', message: 'expected a host name, an IP address, or the directory of a unix socket (/var/run/postgresql), got nothing', fix: 'write a host name, an IP address, or the directory of a unix socket (/var/run/postgresql)'}],
  },
  {
    name: 'tls mode misspelt',
    yaml: [...prodHead, '    tls: verify_full'],
    issues: [{line: 6, column: 10, keyPath: 'targets.prod.tls', kind: 'enum', message: 'expected one of disable, prefer, require, verify-full, got "verify_full"; did you mean "verify-full"?', fix: 'write "verify-full"'}],
  },
  {
    name: 'tls mode that is not one at all',
    yaml: [...prodHead, '    tls: true'],
    issues: [{line: 6, column: 10, keyPath: 'targets.prod.tls', kind: 'enum', message: 'expected one of disable, prefer, require, verify-full, got true', fix: 'write one of disable, prefer, require, verify-full'}],
  },
  {
    name: 'bad enum in a rule action',
    yaml: [...prodHead, '    rules:', '      - match: {class: ddl}', '        action: require-approval'],
    issues: [{line: 8, column: 17, keyPath: 'targets.prod.rules[0].action', kind: 'enum', message: 'expected one of allow, deny, require_approval, warn, got "require-approval"; did you mean "require_approval"?', fix: 'write "require_approval"'}],
  },
  {
    name: 'a statement kind used as a class',
    yaml: [...prodHead, '    rules:', '      - match: {class: delete}', '        action: deny'],
    issues: [
      {
        line: 7,
        column: 24,
        keyPath: 'targets.prod.rules[0].match.class',
        kind: 'enum',
        message: 'expected one of read, write, ddl, privilege, admin, transaction, session, opaque, unknown, got "delete"',
        fix: 'write one of read, write, ddl, privilege, admin, transaction, session, opaque, unknown; to match a statement kind such as "delete", use command: delete (with class: write for data changes)',
      },
    ],
  },
  {
    name: 'bad duration',
    yaml: [...prodHead, '    approvals:', '      expiry: 15x'],
    issues: [{line: 7, column: 15, keyPath: 'targets.prod.approvals.expiry', kind: 'format', message: 'expected a duration such as 30s, 15m, 2h, 1h30m, 1d, 2w or 1y (or whole seconds), got "15x"', fix: 'write amounts with a unit (y, w, d, h, m, s), largest first, e.g. 15m or 1h30m'}],
  },
  {
    name: 'duration beyond its bound',
    yaml: ['identity:', '  issuer: https://login.example.com', '  clientId: dbgate-cli', '  clockSkew: 1h', ...prodHead],
    issues: [{line: 4, column: 14, keyPath: 'identity.clockSkew', kind: 'range', message: 'expected a duration at most 10m, got "1h"', fix: 'write a duration at most 10m'}],
  },
  {
    name: 'decimal size unit',
    yaml: ['tunnel:', '  maxMessageSize: 1GB', ...prodHead],
    issues: [{line: 2, column: 19, keyPath: 'tunnel.maxMessageSize', kind: 'format', message: 'expected a size such as 512KiB, 1MiB or 1GiB (or whole bytes), got "1GB"; did you mean "1GiB"?', fix: 'write "1GiB" (sizes use binary units B, KiB, MiB, GiB)'}],
  },
  {
    name: 'size beyond the protocol limit',
    yaml: ['tunnel:', '  maxMessageSize: 4GiB', ...prodHead],
    issues: [{line: 2, column: 19, keyPath: 'tunnel.maxMessageSize', kind: 'range', message: 'expected a size between 1KiB and 2147483647 bytes, got "4GiB"', fix: 'write a size between 1KiB and 2147483647 bytes'}],
  },
  {
    name: "a target's tunnel limits, with their location",
    yaml: [...prodHead, '    tunnel:', '      maxUpstreamSessions: 0', '      authTimeout: forever'],
    issues: [
      {line: 7, column: 28, keyPath: 'targets.prod.tunnel.maxUpstreamSessions', kind: 'range', message: expect.stringMatching(/^expected an integer .*1.*got 0/) as unknown as string, fix: expect.any(String) as unknown as string},
      {line: 8, column: 20, keyPath: 'targets.prod.tunnel.authTimeout', kind: 'format', message: 'expected a duration such as 30s, 15m, 2h, 1h30m, 1d, 2w or 1y (or whole seconds), got "forever"', fix: 'write amounts with a unit (y, w, d, h, m, s), largest first, e.g. 15m or 1h30m'},
    ],
  },
  {
    name: 'missing required keys are each reported at their section',
    yaml: ['targets:', '  prod:', '    host: db.internal'],
    issues: [
      {line: 2, column: 3, keyPath: 'targets.prod.database', kind: 'missing-key', message: 'missing required key "database" in targets.prod', fix: 'add "database: app"'},
      {line: 2, column: 3, keyPath: 'targets.prod.user', kind: 'missing-key', message: 'missing required key "user" in targets.prod', fix: 'add "user: app_rw"'},
    ],
  },
  {
    name: 'missing targets section',
    yaml: ['recording:', '  previewRows: 3'],
    issues: [{line: 1, column: 1, keyPath: 'targets', kind: 'missing-key', message: 'missing required key "targets" in the top level', fix: 'add "targets: {prod: {host: …, database: …, user: …}}"'}],
  },
  {
    name: 'empty targets map',
    yaml: ['targets: {}'],
    issues: [{line: 1, column: 1, keyPath: 'targets', kind: 'empty', message: 'targets is empty', fix: 'add at least one entry, e.g. "prod: {…}"'}],
  },
  {
    name: 'target name with a space',
    yaml: ['targets:', '  prod db:', '    host: db.internal', '    database: app', '    user: app_rw'],
    issues: [{line: 2, column: 3, keyPath: 'targets["prod db"]', kind: 'format', message: 'invalid name "prod db" in targets', fix: 'rename it: letters, digits, "_" and "-", starting with a letter or digit'}],
  },
  {
    name: 'duplicate rule id, reported at the second one',
    yaml: [...prodHead, '    rules:', '      - id: no-ddl', '        match: {class: ddl}', '        action: deny', '      - id: no-ddl', '        match: {class: admin}', '        action: deny'],
    issues: [{line: 10, column: 13, keyPath: 'targets.prod.rules[1].id', kind: 'duplicate', message: 'duplicate rule id "no-ddl" in targets.prod.rules (first used at line 7)', fix: 'give each item of targets.prod.rules a different id'}],
  },
  {
    name: 'an explicit rule id equal to another rule\'s default id',
    yaml: [...prodHead, '    rules:', '      - match: {class: ddl}', '        action: deny', '      - id: prod.rules[0]', '        match: {class: admin}', '        action: deny'],
    issues: [{line: 9, column: 9, keyPath: 'targets.prod.rules[1].id', kind: 'duplicate', message: 'duplicate rule id "prod.rules[0]" in targets.prod.rules (first used at line 7)', fix: 'give each item of targets.prod.rules a different id'}],
  },
  {
    name: 'where without class write is an impossible rule',
    yaml: [...prodHead, '    rules:', '      - match: {class: ddl, where: none}', '        action: deny'],
    issues: [{line: 7, column: 29, keyPath: 'targets.prod.rules[0].match.where', kind: 'impossible-rule', message: 'impossible rule: "where" only applies to class write, but class is ddl', fix: 'set "class: write" in this match, or remove "where"'}],
  },
  {
    name: 'where with no class at all',
    yaml: [...prodHead, '    rules:', '      - match: {where: trivial}', '        action: deny'],
    issues: [{line: 7, column: 17, keyPath: 'targets.prod.rules[0].match.where', kind: 'impossible-rule', message: 'impossible rule: "where" only applies to class write, but no class is set', fix: 'set "class: write" in this match, or remove "where"'}],
  },
  {
    name: 'a command dbgate never reports, which would make a deny rule match nothing',
    yaml: [...prodHead, '    rules:', '      - match: {command: [create_table, creat table]}', '        action: deny'],
    issues: [
      {
        line: 7,
        column: 41,
        keyPath: 'targets.prod.rules[0].match.command[1]',
        kind: 'impossible-rule',
        message: '"creat table" is not a statement kind dbgate reports, so a rule on it would never match',
        fix: 'write create_table, or another kind from the list in docs/policy.md (Classes and commands)',
      },
    ],
  },
  {
    name: 'empty match',
    yaml: [...prodHead, '    rules:', '      - match: {}', '        action: deny'],
    issues: [{line: 7, column: 9, keyPath: 'targets.prod.rules[0].match', kind: 'empty', message: 'an empty match would apply the rule to every statement', fix: 'add at least one of: class, command, tables, functions, groups, where, settings, client'}],
  },
  {
    name: 'plain http issuer on a network host',
    yaml: ['identity:', '  issuer: http://login.example.com', '  clientId: dbgate-cli', ...prodHead],
    issues: [{line: 2, column: 11, keyPath: 'identity.issuer', kind: 'format', message: 'plain http is only allowed for loopback hosts, got "http://login.example.com"', fix: 'use https:// for the issuer'}],
  },
  {
    // By name, localhost may reach ::1 first, where anyone may serve the signing keys at that port.
    name: 'plain http issuer named localhost',
    yaml: ['identity:', '  issuer: http://LocalHost:8080/realms/dev', '  clientId: dbgate-cli', ...prodHead],
    issues: [
      {
        line: 2,
        column: 11,
        keyPath: 'identity.issuer',
        kind: 'format',
        message: 'plain http to the name localhost is refused, got "http://LocalHost:8080/realms/dev": the name may reach ::1, where any local user may listen at that port while the issuer listens on 127.0.0.1',
        fix: 'write the address it listens on instead: http://127.0.0.1:8080/realms/dev (or http://[::1]…), as the issuer names itself',
      },
    ],
  },
  {
    name: 'verify: id_token without the openid scope',
    yaml: ['identity:', '  issuer: https://login.example.com', '  clientId: dbgate-cli', '  scopes: [profile]', ...prodHead],
    issues: [{line: 4, column: 3, keyPath: 'identity.scopes', kind: 'impossible-rule', message: 'scopes lack "openid", so no ID token is issued and verify: id_token cannot succeed', fix: 'add openid to scopes'}],
  },
  {
    name: 'misspelt secret source',
    yaml: [...prodHead, '    password: evn:PROD_DB_PASSWORD'],
    issues: [{line: 6, column: 15, keyPath: 'targets.prod.password', kind: 'enum', message: 'unknown secret source prefix; did you mean "env:"?', fix: 'write env:NAME'}],
  },
  {
    name: 'malformed env secret source',
    yaml: [...prodHead, '    password: env:PROD-DB'],
    issues: [{line: 6, column: 15, keyPath: 'targets.prod.password', kind: 'format', message: '"env:" must be followed by an environment variable name', fix: 'write env:NAME, e.g. env:PROD_DB_PASSWORD'}],
  },
  {
    name: 'unknown masking category',
    yaml: [...prodHead, '    masking:', '      strategies: {phon: hash}'],
    issues: [{line: 7, column: 20, keyPath: 'targets.prod.masking.strategies.phon', kind: 'unknown-key', message: 'unknown masking category "phon"; did you mean "phone"?', fix: 'rename it to "phone"'}],
  },
  {
    name: 'column glob without three parts',
    yaml: [...prodHead, '    masking:', '      mask: [users.notes]'],
    issues: [{line: 7, column: 14, keyPath: 'targets.prod.masking.mask[0]', kind: 'type', message: 'expected a column glob schema.table.column such as public.users.email, got "users.notes"', fix: 'write three dot-separated parts: schema.table.column (use * as a wildcard)'}],
  },
  {
    name: 'objectLock on a file bucket',
    yaml: ['bucket:', '  url: file:///var/lib/dbgate', '  objectLock: {mode: GOVERNANCE, days: 30}', ...prodHead],
    issues: [{line: 3, column: 3, keyPath: 'bucket.objectLock', kind: 'impossible-rule', message: '"objectLock" only applies to s3:// buckets', fix: 'remove "objectLock", or use an s3:// url'}],
  },
  {
    name: 'bad bucket URL',
    yaml: ['bucket: /var/lib/dbgate', ...prodHead],
    issues: [{line: 1, column: 9, keyPath: 'bucket', kind: 'format', message: 'expected a bucket URL: file:///absolute/path or s3://bucket/prefix, got "/var/lib/dbgate"', fix: 'write file:///absolute/path or s3://bucket/prefix'}],
  },
  {
    name: 'alias to an undefined anchor',
    yaml: [...prodHead, '    reviewers: *dbas'],
    issues: [
      {line: 6, column: 16, keyPath: 'targets.prod.reviewers', kind: 'syntax', message: 'alias *dbas refers to no anchor', fix: 'define "&dbas" on an earlier value, or write the value here'},
    ],
  },
  {
    name: 'empty file',
    yaml: ['# nothing yet'],
    issues: [{line: 1, column: 1, keyPath: '', kind: 'empty', message: 'the configuration file is empty', fix: 'add at least a "targets:" section (see docs/configuration.md)'}],
  },
]

describe('parseConfigText errors', () => {
  it.each(cases)('$name', ({yaml, issues}) => {
    const err = rejection(yaml)
    expect(err.code).toBe(CONFIG_INVALID)
    expect(err.issues.map(pick)).toEqual(issues)
    for (const issue of err.issues) expect(issue.file).toBe('dbgate.yaml')
  })

  it('reports YAML syntax errors with file:line:column and skips schema checks on the broken tree', () => {
    const err = rejection(['targets:', '  prod: [db.internal', '  dev: {}'])
    expect(err.issues.length).toBeGreaterThan(0)
    const [first] = err.issues
    expect(first).toMatchObject({file: 'dbgate.yaml', line: 3, column: 3, keyPath: '', kind: 'syntax'})
    expect(first!.message).toMatch(/Flow sequence/)
    expect(first!.fix).toBe('align this line with its siblings, and close any [ or { it is inside')
    expect(err.issues.every((i) => i.kind === 'syntax')).toBe(true)
  })

  it('reports tabs used for indentation', () => {
    const err = rejection(['targets:', '\tprod: {}'])
    expect(err.issues[0]).toMatchObject({line: 2, kind: 'syntax', fix: 'indent with spaces, not tabs'})
  })

  it('reports a duplicate YAML key and still validates the rest of the file', () => {
    const err = rejection([...prodHead, '    port: 5432', '    port: abc'])
    expect(err.issues.map(pick)).toEqual([
      {line: 7, column: 5, keyPath: '', kind: 'syntax', message: 'duplicate key: Map keys must be unique', fix: 'remove or rename one of the two keys'},
      {line: 7, column: 11, keyPath: 'targets.prod.port', kind: 'type', message: 'expected an integer between 1 and 65535, got "abc"', fix: 'write an integer between 1 and 65535'},
    ])
  })

  it('reports every error in the file, in file order, and formats them like a compiler', () => {
    const err = rejection([
      'identity:',
      '  issuer: https://login.example.com',
      '  clientID: dbgate-cli',
      'targets:',
      '  prod:',
      '    host: db.internal',
      '    port: "5432x"',
      '    database: app',
      '    user: app_rw',
      '    tls: sometimes',
    ])
    expect(err.message).toBe('Invalid configuration in dbgate.yaml: 4 errors')
    expect(err.format()).toBe(
      [
        'Invalid configuration in dbgate.yaml: 4 errors',
        'dbgate.yaml:1:1 identity.clientId: missing required key "clientId" in identity — fix: add "clientId: dbgate-cli"',
        'dbgate.yaml:3:3 identity.clientID: unknown key "clientID" in identity; did you mean "clientId"? — fix: rename it to "clientId"',
        'dbgate.yaml:7:11 targets.prod.port: expected an integer between 1 and 65535, got "5432x" — fix: write an integer between 1 and 65535',
        'dbgate.yaml:10:10 targets.prod.tls: expected one of disable, prefer, require, verify-full, got "sometimes" — fix: write one of disable, prefer, require, verify-full',
      ].join('\n'),
    )
  })

  it('shows paths under the working directory relative to it', () => {
    const issue: ConfigIssue = {severity: 'error', kind: 'type', file: '/srv/app/dbgate.yaml', line: 3, column: 9, keyPath: 'targets', message: 'm', fix: 'f'}
    expect(formatIssue(issue, {cwd: '/srv/app'})).toBe('dbgate.yaml:3:9 targets: m — fix: f')
    expect(formatIssue(issue, {cwd: '/elsewhere'})).toBe('/srv/app/dbgate.yaml:3:9 targets: m — fix: f')
  })

  it('never echoes a secret value, even when it is the wrong type', () => {
    const err = rejection([...prodHead, '    password: 918273645', '    port: x'])
    expect(err.issues[0]).toMatchObject({keyPath: 'targets.prod.password', message: 'expected a secret source: env:VAR, file:/path or keychain:NAME, got a number'})
    expect(err.format()).not.toContain('918273645')
    expect(JSON.stringify(err.issues)).not.toContain('918273645')
  })

  it('never echoes an inline password alongside other errors', () => {
    const err = rejection([...prodHead, '    password: "s3cr3t-Hunter2"', '    port: x'])
    expect(err.format()).not.toContain('s3cr3t-Hunter2')
    expect(JSON.stringify([...err.issues, ...err.warnings])).not.toContain('s3cr3t-Hunter2')
    expect(err.warnings.map((w) => w.keyPath)).toEqual(['targets.prod.password'])
    expect(err.format().split('\n').slice(1)).toEqual([
      'dbgate.yaml:7:11 targets.prod.port: expected an integer between 1 and 65535, got "x" — fix: write an integer between 1 and 65535',
      'dbgate.yaml:6:15 targets.prod.password: warning: secret written in plain text in the config file — fix: move it out of the file and write env:VAR, file:/path or keychain:NAME instead',
    ])
  })
})

describe('parseConfigText warnings', () => {
  it('accepts an inline password with a warning naming file:line and the alternatives', () => {
    const {config, warnings} = parseConfigText([...prodHead, '    password: hunter2'].join('\n'), 'dbgate.yaml')
    expect(warnings).toEqual([
      {
        severity: 'warning',
        kind: 'inline-secret',
        file: 'dbgate.yaml',
        line: 6,
        column: 15,
        keyPath: 'targets.prod.password',
        message: 'secret written in plain text in the config file',
        fix: 'move it out of the file and write env:VAR, file:/path or keychain:NAME instead',
      },
    ])
    expect(formatIssue(warnings[0]!)).toBe(
      'dbgate.yaml:6:15 targets.prod.password: warning: secret written in plain text in the config file — fix: move it out of the file and write env:VAR, file:/path or keychain:NAME instead',
    )
    expect(config.targets.prod!.password?.kind).toBe('inline')
  })

  it('warns that tlsCa does nothing unless the certificate is verified', () => {
    const {warnings} = parseConfigText([...prodHead, '    tlsCa: /etc/ssl/ca.pem'].join('\n'), 'dbgate.yaml')
    expect(warnings.map(pick)).toEqual([
      {line: 6, column: 5, keyPath: 'targets.prod.tlsCa', kind: 'ineffective', message: 'tlsCa has no effect with tls: prefer; the server certificate is not verified', fix: 'set "tls: verify-full" (or require), or remove tlsCa'},
    ])
  })

  it('warns about a plain http bucket endpoint off loopback', () => {
    const text = ['bucket:', '  url: s3://audit/dbgate', '  endpoint: http://minio.internal:9000', ...prodHead].join('\n')
    expect(parseConfigText(text, 'dbgate.yaml').warnings.map(pick)).toEqual([
      {line: 3, column: 3, keyPath: 'bucket.endpoint', kind: 'insecure', message: 'plain http endpoint: recordings travel to the bucket unencrypted', fix: 'use an https:// endpoint (plain http is fine for a loopback address)'},
    ])
  })

  it('warns about a plain http bucket endpoint named localhost, and not about one at a loopback address', () => {
    const named = ['bucket:', '  url: s3://audit/dbgate', '  endpoint: http://localhost:9000', ...prodHead].join('\n')
    expect(parseConfigText(named, 'dbgate.yaml').warnings.map(pick)).toEqual([
      {
        line: 3,
        column: 3,
        keyPath: 'bucket.endpoint',
        kind: 'insecure',
        message: 'plain http endpoint named localhost: the name may reach ::1, where any local user may listen at that port while the bucket listens on 127.0.0.1, and take the recordings',
        fix: 'write the address the bucket listens on instead, such as http://127.0.0.1:9000',
      },
    ])
    for (const endpoint of ['http://127.0.0.1:9000', 'http://[::1]:9000']) {
      expect(parseConfigText(['bucket:', '  url: s3://audit/dbgate', `  endpoint: ${endpoint}`, ...prodHead].join('\n'), 'dbgate.yaml').warnings, endpoint).toEqual([])
    }
  })

  it('has no warnings for tlsCa with verify-full or a password from env', () => {
    const {warnings} = parseConfigText([...prodHead, '    tls: verify-full', '    tlsCa: /etc/ssl/ca.pem', '    password: env:PGPASSWORD'].join('\n'), 'dbgate.yaml')
    expect(warnings).toEqual([])
  })
})
