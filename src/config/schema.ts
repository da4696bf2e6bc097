/**
 * The shape of dbgate.yaml, declared once, one zod schema per section; the types the rest of
 * dbgate uses (types.ts) are inferred from it. To add a section: declare it with `object({...})`
 * below and add it to the root; unknown keys, types, defaults and file/line/column in messages
 * come for free (fields.ts, yaml-source.ts).
 */
import {hostname} from 'node:os'
import {isAbsolute, resolve} from 'node:path'
import {fileURLToPath} from 'node:url'
import type {z} from 'zod'
import {
  boolean,
  byShape,
  FAILED,
  integer,
  list,
  map,
  object,
  oneOf,
  oneOrList,
  record,
  required,
  scalar,
  string,
  withDefault,
  type Diagnostic,
  type KeyPath,
} from './fields.js'
import {parseSecretSource, SECRET_SOURCE_KINDS} from './secret-ref.js'
import {closest} from './suggest.js'
import {isKnownCommand, KNOWN_COMMANDS} from '../policy/walker.js'
import {
  CLIENT_KINDS,
  CONDITIONAL_WRITE_MODES,
  MASKING_CATEGORIES,
  MASKING_STRATEGIES,
  MCP_MODES,
  OBJECT_LOCK_MODES,
  POLICY_PACKS,
  RULE_ACTIONS,
  STATEMENT_CLASSES,
  TLS_MODES,
  TOKEN_KINDS,
  UNTRACEABLE_ACTIONS,
  WHERE_KINDS,
  type MaskingCategory,
  type MaskingStrategy,
  type SecretRef,
  type SourceLocation,
} from './types.js'
import {DURATION_EXAMPLES} from '../util/duration.js'
import {isLoopbackHttp, isLoopbackNameHttp} from '../util/loopback.js'
import {formatDuration, formatSize, parseDuration, parseSize, suggestSize} from './units.js'
import {DEFAULT_TUNNEL_LIMITS} from '../proxy/limits.js'

export const TARGET_NAME = /^[a-z0-9][a-z0-9_-]*$/i
export const DEFAULT_SCOPES = ['openid', 'profile', 'email', 'offline_access']
export const DEFAULT_PORT = 5432
export const DEFAULT_CLOCK_SKEW_MS = 60_000
/** The `identity` keys a file may leave out; also for identity configs built without a file (src/identity/config.ts). */
export const IDENTITY_DEFAULTS = {scopes: DEFAULT_SCOPES, groupsClaim: 'groups', verify: 'id_token' as const, clockSkewMs: DEFAULT_CLOCK_SKEW_MS}
export const DEFAULT_APPROVAL_EXPIRY_MS = 15 * 60_000
export const DEFAULT_PREVIEW_ROWS = 5
/** How long `dbgate connect` waits for a target's database to answer (libpq's connect_timeout, which has no default, would wait forever). */
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000
/** An agent reads, in pages small enough for a prompt, unless the target says otherwise. */
export const DEFAULT_MCP = {mode: 'read-only' as const, maxRows: 200, maxBytes: 256 * 1024, timeoutMs: 30_000, approvalWaitMs: 5_000}
export const DEFAULT_TUNNEL = {maxMessageSize: 1024 ** 3, maxStatementSize: 1024 ** 2, ...DEFAULT_TUNNEL_LIMITS, changeWaitMs: 10_000}
export const DEFAULT_MAX_SESSION_DURATION_MS = 12 * 3600_000
export const DEFAULT_PIPELINE_IDLE_MS = 30_000
export const DEFAULT_GATEWAY_PORT = 6432
export const DEFAULT_GATEWAY_API_PORT = 8443
export const DEFAULT_OPS_LISTEN = {host: '127.0.0.1', port: 9187}
export const DEFAULT_DRAIN_TIMEOUT_MS = 30_000
/** How long a statement may run on past the end of its session (server.runningStatementGrace). */
export const DEFAULT_RUNNING_STATEMENT_GRACE_MS = 5 * 60_000
/**
 * The gateway's PostgreSQL listener: sessions one person keeps open at once (the MCP endpoint's
 * default per person), and what a connection that has not signed in yet may hold: a TLS handshake,
 * a startup packet and a token take a client milliseconds, so seconds are plenty; the upstream login
 * after it keeps tunnel.authTimeout.
 */
export const DEFAULT_GATEWAY_LISTENER = {maxSessionsPerPerson: 16, signInTimeoutMs: 10_000, maxPendingSignIns: 512, maxPendingSignInsPerAddress: 64}
/** PostgreSQL message lengths are signed 32-bit integers, so no message can be larger. */
const MAX_PROTOCOL_MESSAGE = 2 ** 31 - 1

export interface SchemaOptions {
  /** Relative paths (tlsCa, file: secrets) are resolved against this directory: the config file's. */
  baseDir: string
  /** `bucket` when the file has none: file://<user data dir>/bucket. */
  defaultBucketUrl: string
  /** The file, and where a value was written in it: rules cite their line. */
  file: string
  positionOf: (path: KeyPath) => {line: number; column: number}
}

function duration(opts: {min?: number; max?: number} = {}) {
  const expected = `a duration such as ${DURATION_EXAMPLES} (or whole seconds)`
  return scalar(expected, (v, report) => {
    if (typeof v !== 'string' && typeof v !== 'number') return undefined
    const ms = parseDuration(v)
    if (ms === undefined) return report({kind: 'format', message: `expected ${expected}, got ${JSON.stringify(v)}`, fix: 'write amounts with a unit (y, w, d, h, m, s), largest first, e.g. 15m or 1h30m'})
    if ((opts.min !== undefined && ms < opts.min) || (opts.max !== undefined && ms > opts.max)) {
      const bounds = [opts.min !== undefined ? `at least ${formatDuration(opts.min)}` : '', opts.max !== undefined ? `at most ${formatDuration(opts.max)}` : ''].filter(Boolean).join(' and ')
      return report({kind: 'range', message: `expected a duration ${bounds}, got ${JSON.stringify(v)}`, fix: `write a duration ${bounds}`})
    }
    return ms
  })
}

function size(opts: {min: number; max: number}) {
  const expected = 'a size such as 512KiB, 1MiB or 1GiB (or whole bytes)'
  return scalar(expected, (v, report) => {
    if (typeof v !== 'string' && typeof v !== 'number') return undefined
    const bytes = parseSize(v)
    if (bytes === undefined) {
      const suggestion = typeof v === 'string' ? suggestSize(v) : undefined
      return report({
        kind: 'format',
        message: `expected ${expected}, got ${JSON.stringify(v)}${suggestion ? `; did you mean "${suggestion}"?` : ''}`,
        fix: suggestion ? `write "${suggestion}" (sizes use binary units B, KiB, MiB, GiB)` : 'write a whole number followed by B, KiB, MiB or GiB',
      })
    }
    if (bytes < opts.min || bytes > opts.max) {
      const between = `a size between ${formatSize(opts.min)} and ${formatSize(opts.max)}`
      return report({kind: 'range', message: `expected ${between}, got ${JSON.stringify(v)}`, fix: `write ${between}`})
    }
    return bytes
  })
}

/** An https URL; plain http only for loopback, where nothing crosses a network. */
function httpsUrl(opts: {what: string; example: string; noQuery?: boolean}) {
  const expected = `an https URL such as ${opts.example}`
  return scalar(expected, (v, report) => {
    if (typeof v !== 'string') return undefined
    let url: URL
    try {
      url = new URL(v)
    } catch {
      return report({kind: 'format', message: `expected ${expected}, got ${JSON.stringify(v)}`, fix: `write the full ${opts.what} URL, starting with https://`})
    }
    if (isLoopbackNameHttp(url)) {
      return report({kind: 'format', message: `plain http to the name localhost is refused, got ${JSON.stringify(v)}: the name may reach ::1, where any local user may listen at that port while the ${opts.what} listens on 127.0.0.1`, fix: `write the address it listens on instead: http://127.0.0.1${url.port ? `:${url.port}` : ''}${url.pathname === '/' ? '' : url.pathname} (or http://[::1]…), as the ${opts.what} names itself`})
    }
    if (url.protocol === 'http:' && !isLoopbackHttp(url)) {
      return report({kind: 'format', message: `plain http is only allowed for loopback hosts, got ${JSON.stringify(v)}`, fix: `use https:// for the ${opts.what}`})
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      return report({kind: 'format', message: `expected ${expected}, got ${JSON.stringify(v)}`, fix: `write the ${opts.what} URL starting with https://`})
    }
    if (opts.noQuery && (url.search || url.hash)) {
      return report({kind: 'format', message: `the ${opts.what} URL must not have a query or fragment, got ${JSON.stringify(v)}`, fix: 'remove everything from "?" or "#" on'})
    }
    return v
  })
}

/** A filesystem path; relative ones are taken from the config file's directory, not the cwd. */
function path(baseDir: string, example: string) {
  return string({expected: `a file path such as ${example}`}).transform((p) => (isAbsolute(p) ? p : resolve(baseDir, p)))
}

/**
 * `env:VAR`, `file:/path` or `keychain:NAME`; anything else is the secret itself, accepted but
 * warned about (configWarnings), because config files get committed and shared.
 */
function readSecret(text: string, baseDir: string): {ref: SecretRef} | {problem: Diagnostic} {
  const parsed = parseSecretSource(text, baseDir)
  if (!parsed.ok) return {problem: {kind: 'format', message: parsed.message, fix: parsed.fix}}
  if (parsed.ref.kind !== 'inline') return {ref: parsed.ref}
  const kind = /^([a-z]+):/.exec(text)?.[1]
  // "evn:X" is far likelier a typo than a password that happens to look like a source. The
  // message does not echo the prefix: in the unlikely other case it is part of a password.
  const typo = kind && kind.length >= 3 ? closest(kind, SECRET_SOURCE_KINDS) : undefined
  if (typo) return {problem: {kind: 'enum', message: `unknown secret source prefix; did you mean "${typo}:"?`, fix: `write ${typo}:${typo === 'file' ? '/path' : 'NAME'}`}}
  return {ref: parsed.ref}
}

function secretRef(baseDir: string) {
  return scalar(
    'a secret source: env:VAR, file:/path or keychain:NAME',
    (v, report) => {
      if (typeof v !== 'string' || v === '') return undefined
      const read = readSecret(v, baseDir)
      return 'problem' in read ? report(read.problem) : read.ref
    },
    {secret: true, fix: 'write env:VAR, file:/path or keychain:NAME'},
  )
}

/** AWS region names: `eu-west-1`, `us-gov-west-1`, `cn-north-1`, `ap-southeast-4`. */
const AWS_REGION = /^[a-z]{2}(?:-[a-z]+)+-\d+$/

const rdsIam = object({
  region: required(string({pattern: AWS_REGION, expected: 'an AWS region such as eu-west-1'}), 'eu-west-1'),
  profile: string({pattern: /^\S+$/, expected: 'an AWS profile name'}).optional(),
})

/** A target's password: a secret source, or `{rdsIam: {region, profile?}}` for a token made per connection. */
function password(baseDir: string) {
  return byShape<SecretRef | {rdsIam: z.output<typeof rdsIam>}>(
    {scalar: secretRef(baseDir), map: object({rdsIam: required(rdsIam, '{region: eu-west-1}')})},
    'a secret source (env:VAR, file:/path, keychain:NAME) or {rdsIam: {region: …}}',
  )
}

const groupName = string({expected: 'a group name'})
const groups = oneOrList(groupName)
const glob = (example: string) => string({pattern: /^\S+$/, expected: `a glob without spaces such as ${example}`})
const columnGlob = string({
  pattern: /^[^.\s]+\.[^.\s]+\.[^.\s]+$/,
  expected: 'a column glob schema.table.column such as public.users.email',
  fix: 'write three dot-separated parts: schema.table.column (use * as a wildcard)',
})

function identity(opts: Pick<SchemaOptions, 'baseDir'>) {
  const section = object(
    {
      issuer: required(httpsUrl({what: 'issuer', example: 'https://login.example.com', noQuery: true}), 'https://login.example.com'),
      clientId: required(string(), 'dbgate-cli'),
      clientSecret: secretRef(opts.baseDir).optional(),
      scopes: withDefault(list(string({pattern: /^\S+$/, expected: 'a scope name'}), {min: 1}), IDENTITY_DEFAULTS.scopes),
      groupsClaim: withDefault(string({pattern: /^[^.\s]+(\.[^.\s]+)*$/, expected: 'a claim name or dotted path such as realm_access.roles'}), IDENTITY_DEFAULTS.groupsClaim),
      audience: string().optional(),
      verify: withDefault(oneOf(TOKEN_KINDS), IDENTITY_DEFAULTS.verify),
      clockSkew: withDefault(duration({max: 10 * 60_000}), IDENTITY_DEFAULTS.clockSkewMs),
      allowedClients: list(string({pattern: /^\S+$/, expected: 'an OAuth client id such as ci-runner'}), {min: 1}).optional(),
    },
    {
      check(v, report) {
        // Without the openid scope the IdP issues no ID token, so verify: id_token could never pass.
        if (v.verify === 'id_token' && !v.scopes.includes('openid')) {
          report({kind: 'impossible-rule', message: 'scopes lack "openid", so no ID token is issued and verify: id_token cannot succeed', fix: 'add openid to scopes'}, 'scopes')
        }
      },
    },
  )
  return section.transform((v) => ({
    issuer: v.issuer,
    clientId: v.clientId,
    ...(v.clientSecret ? {clientSecret: v.clientSecret} : {}),
    scopes: v.scopes,
    /** Dotted path into the token's claims, e.g. `realm_access.roles`. */
    groupsClaim: v.groupsClaim,
    audience: v.audience ?? v.clientId,
    verify: v.verify,
    clockSkewMs: v.clockSkew,
    /**
     * Clients, besides clientId, whose tokens are accepted: a token whose authorized party (`azp`,
     * else `client_id`) names any other is refused. Absent: any client's (ID tokens: clientId only).
     */
    ...(v.allowedClients ? {allowedClients: v.allowedClients} : {}),
  }))
}

const S3_BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/

const bucketUrl = scalar('a bucket URL: file:///absolute/path or s3://bucket/prefix', (v, report) => {
  if (typeof v !== 'string') return undefined
  let url: URL | undefined
  try {
    url = new URL(v)
  } catch {
    url = undefined
  }
  if (url?.protocol === 'file:') {
    try {
      fileURLToPath(url)
    } catch {
      return report({kind: 'format', message: `file bucket URLs need an absolute local path, got ${JSON.stringify(v)}`, fix: 'write file:///absolute/path (three slashes)'})
    }
    return v
  }
  if (url?.protocol === 's3:') {
    if (!S3_BUCKET.test(url.hostname)) return report({kind: 'format', message: `invalid S3 bucket name ${JSON.stringify(url.hostname)}`, fix: 'use 3-63 lowercase letters, digits, dots or hyphens: s3://bucket/prefix'})
    return v
  }
  return report({kind: 'format', message: `expected a bucket URL: file:///absolute/path or s3://bucket/prefix, got ${JSON.stringify(v)}`, fix: 'write file:///absolute/path or s3://bucket/prefix'})
})

const S3_ONLY = ['endpoint', 'region', 'forcePathStyle', 'objectLock', 'conditionalWrites'] as const

/** Structurally what `src/bucket` accepts; `url` is `file:///abs/path` or `s3://bucket/prefix`. */
const bucketObject = object(
  {
    url: required(bucketUrl, 's3://bucket/prefix'),
    endpoint: scalar('an http(s) URL such as http://127.0.0.1:9000', (v) => {
      if (typeof v !== 'string') return undefined
      try {
        const u = new URL(v)
        return u.protocol === 'https:' || u.protocol === 'http:' ? v : undefined
      } catch {
        return undefined
      }
    }).optional(),
    region: string({pattern: /^[a-z0-9-]+$/, expected: 'a region such as us-east-1'}).optional(),
    forcePathStyle: boolean().optional(),
    objectLock: object({mode: required(oneOf(OBJECT_LOCK_MODES), 'GOVERNANCE'), days: required(integer({min: 1, max: 36_500}), '365')}).optional(),
    conditionalWrites: oneOf(CONDITIONAL_WRITE_MODES).optional(),
  },
  {
    check(v, report) {
      if (v.url.startsWith('s3:')) return
      for (const key of S3_ONLY) {
        if (v[key] !== undefined) report({kind: 'impossible-rule', message: `"${key}" only applies to s3:// buckets`, fix: `remove "${key}", or use an s3:// url`}, key)
      }
    },
  },
)

const bucket = byShape(
  {
    scalar: bucketUrl.transform((url) => ({url}) as z.output<typeof bucketObject>),
    map: bucketObject.transform((v) => {
      const out: z.output<typeof bucketObject> = {url: v.url}
      for (const key of S3_ONLY) if (v[key] !== undefined) (out as Record<string, unknown>)[key] = v[key]
      return out
    }),
  },
  'a bucket URL (file:///path or s3://bucket/prefix) or a map with url, endpoint, region, …',
)

function classHint(got: string): string | undefined {
  return /^[a-z]+$/.test(got)
    ? `write one of ${STATEMENT_CLASSES.join(', ')}; to match a statement kind such as "${got}", use command: ${got} (with class: write for data changes)`
    : undefined
}

/**
 * A statement kind as dbgate reports it (`create_table`); `create table` is read as that word. A
 * word it never reports is refused here: a deny rule on it would never match, and say nothing.
 */
const commandWord = scalar('a statement kind such as drop, truncate or create_table', (v, report) => {
  if (typeof v !== 'string') return undefined
  const word = v.trim().toLowerCase().replace(/\s+/g, '_')
  if (!/^[a-z]+(_[a-z]+)*$/.test(word)) return undefined
  if (isKnownCommand(word)) return word
  const near = closest(word, [...KNOWN_COMMANDS])
  return report({
    kind: 'impossible-rule',
    message: `${JSON.stringify(v)} is not a statement kind dbgate reports, so a rule on it would never match`,
    fix: near ? `write ${near}, or another kind from the list in docs/policy.md (Classes and commands)` : 'write a kind from the list in docs/policy.md (Classes and commands)',
  })
})

/** What a rule matches; every key narrows it. */
export const ruleMatch = object(
  {
    class: oneOrList(oneOf(STATEMENT_CLASSES, {hint: classHint})).optional(),
    command: oneOrList(commandWord).optional(),
    tables: oneOrList(glob('public.users or audit.*')).optional(),
    functions: oneOrList(glob('pg_*')).optional(),
    groups: groups.optional(),
    where: oneOf(WHERE_KINDS).optional(),
    /** Setting names (globs) for SET, RESET, set_config() and startup parameters. */
    settings: oneOrList(glob('search_path or app.*')).optional(),
    /** How a session reaches the tunnel (`mcp`: an AI agent). */
    client: oneOrList(oneOf(CLIENT_KINDS)).optional(),
  },
  {
    nonEmpty: 'an empty match would apply the rule to every statement',
    check(m, report) {
      if (m.where === undefined) return
      const classes = m.class ?? []
      if (classes.length === 1 && classes[0] === 'write') return
      const got = classes.length === 0 ? 'no class is set' : `class is ${classes.join(', ')}`
      report({kind: 'impossible-rule', message: `impossible rule: "where" only applies to class write, but ${got}`, fix: 'set "class: write" in this match, or remove "where"'}, 'where')
    },
  },
)

const ruleId = string({expected: 'a rule id'})
const ruleAction = oneOf(RULE_ACTIONS)

const rule = object({
  id: ruleId.optional(),
  match: required(ruleMatch, '{class: ddl}'),
  action: required(ruleAction, 'deny'),
  reason: string().optional(),
})

const strategies = map(record(oneOf(MASKING_STRATEGIES), {pattern: /^[a-z_]+$/, nameRule: 'a category name', exampleKey: 'email'}), (entries, report) => {
  const out: Partial<Record<MaskingCategory, MaskingStrategy>> = {}
  let ok = true
  for (const [category, strategy] of Object.entries(entries)) {
    if ((MASKING_CATEGORIES as readonly string[]).includes(category)) {
      out[category as MaskingCategory] = strategy
      continue
    }
    ok = false
    const suggestion = closest(category, MASKING_CATEGORIES)
    report(
      {
        kind: 'unknown-key',
        message: `unknown masking category "${category}"${suggestion ? `; did you mean "${suggestion}"?` : ''}`,
        fix: suggestion ? `rename it to "${suggestion}"` : `use one of: ${MASKING_CATEGORIES.join(', ')}`,
        at: 'key',
      },
      [category],
    )
  }
  return ok ? out : FAILED
})

/** A target's masking: who sees values in clear, which columns are masked, and how. */
export const masking = object({
  unmask: withDefault(groups, []),
  mask: withDefault(oneOrList(columnGlob), []),
  unmaskColumns: withDefault(oneOrList(columnGlob), []),
  strategies: withDefault(strategies, {}),
  onUntraceable: withDefault(oneOf(UNTRACEABLE_ACTIONS), 'mask'),
})

/** The `tunnel` keys: at the top level every one has its default, under a target each may override it. */
const tunnelKeys = {
  maxMessageSize: size({min: 1024, max: MAX_PROTOCOL_MESSAGE}),
  maxStatementSize: size({min: 1, max: MAX_PROTOCOL_MESSAGE}),
  /** Startup, authentication and the upstream login together. */
  authTimeout: duration({min: 1000, max: 3_600_000}),
  /** Client connections at once, authenticated or not. */
  maxClientConnections: integer({min: 1, max: 100_000}),
  /** Upstream sessions to the target at once. */
  maxUpstreamSessions: integer({min: 1, max: 10_000}),
  /** How long a client past maxUpstreamSessions waits for a session before it is refused. */
  upstreamQueueTimeout: duration({min: 0, max: 3_600_000}),
  /**
   * How long the commit of a change to the catalog waits for the other sessions' statements judged
   * before it, and how long their next statements wait for that commit (src/pipeline/change-gate.ts).
   */
  changeWait: duration({min: 0, max: 3_600_000}),
}

const tunnelDefaults = object({
  maxMessageSize: withDefault(tunnelKeys.maxMessageSize, DEFAULT_TUNNEL.maxMessageSize),
  maxStatementSize: withDefault(tunnelKeys.maxStatementSize, DEFAULT_TUNNEL.maxStatementSize),
  authTimeout: withDefault(tunnelKeys.authTimeout, DEFAULT_TUNNEL.authTimeoutMs),
  maxClientConnections: withDefault(tunnelKeys.maxClientConnections, DEFAULT_TUNNEL.maxClientConnections),
  maxUpstreamSessions: withDefault(tunnelKeys.maxUpstreamSessions, DEFAULT_TUNNEL.maxUpstreamSessions),
  upstreamQueueTimeout: withDefault(tunnelKeys.upstreamQueueTimeout, DEFAULT_TUNNEL.upstreamQueueTimeoutMs),
  changeWait: withDefault(tunnelKeys.changeWait, DEFAULT_TUNNEL.changeWaitMs),
})

const tunnelOverrides = object({
  maxMessageSize: tunnelKeys.maxMessageSize.optional(),
  maxStatementSize: tunnelKeys.maxStatementSize.optional(),
  authTimeout: tunnelKeys.authTimeout.optional(),
  maxClientConnections: tunnelKeys.maxClientConnections.optional(),
  maxUpstreamSessions: tunnelKeys.maxUpstreamSessions.optional(),
  upstreamQueueTimeout: tunnelKeys.upstreamQueueTimeout.optional(),
  changeWait: tunnelKeys.changeWait.optional(),
})

type RawTunnel = z.output<typeof tunnelDefaults>

function tunnelConfig(raw: RawTunnel, over?: Partial<RawTunnel>) {
  const v = (key: keyof RawTunnel): number => over?.[key] ?? raw[key]
  return {
    maxMessageSize: v('maxMessageSize'),
    maxStatementSize: v('maxStatementSize'),
    authTimeoutMs: v('authTimeout'),
    maxClientConnections: v('maxClientConnections'),
    maxUpstreamSessions: v('maxUpstreamSessions'),
    upstreamQueueTimeoutMs: v('upstreamQueueTimeout'),
    changeWaitMs: v('changeWait'),
  }
}

const webhook = httpsUrl({what: 'webhook', example: 'https://hooks.example.com/dbgate'})

const approvals = object({
  expiry: withDefault(duration({min: 1000}), DEFAULT_APPROVAL_EXPIRY_MS),
  windows: withDefault(boolean(), false),
  webhook: webhook.optional(),
}).transform((a) => ({expiryMs: a.expiry, windows: a.windows, ...(a.webhook !== undefined ? {webhook: a.webhook} : {})}))

/** `targets.<name>.mcp`: what an AI agent may do through `dbgate mcp`, and its result caps. */
const mcp = object({
  mode: withDefault(oneOf(MCP_MODES), DEFAULT_MCP.mode),
  /** Most rows a query returns to the agent (the default for its `maxRows`, and the ceiling). */
  maxRows: withDefault(integer({min: 1, max: 100_000}), DEFAULT_MCP.maxRows),
  /** Most bytes of row data a query returns to the agent. */
  maxBytes: withDefault(size({min: 1024, max: 64 * 1024 ** 2}), DEFAULT_MCP.maxBytes),
  timeout: withDefault(duration({min: 1000}), DEFAULT_MCP.timeoutMs),
  approvalWait: withDefault(duration({min: 0, max: 60_000}), DEFAULT_MCP.approvalWaitMs),
}).transform((m) => ({mode: m.mode, maxRows: m.maxRows, maxBytes: m.maxBytes, timeoutMs: m.timeout, approvalWaitMs: m.approvalWait}))

/** The keys of a target, for telling a dedented one from a target's name (parse.ts). */
export const TARGET_KEYS = ['host', 'port', 'database', 'user', 'password', 'tls', 'tlsCa', 'connectTimeout', 'allow', 'reviewers', 'policy', 'rules', 'masking', 'approvals', 'mcp', 'tunnel'] as const

function target(opts: SchemaOptions) {
  return object(
    {
      host: required(string({pattern: /^\S+$/, expected: 'a host name, an IP address, or the directory of a unix socket (/var/run/postgresql)'}), 'db.internal'),
      port: withDefault(integer({min: 1, max: 65535}), DEFAULT_PORT),
      database: required(string(), 'app'),
      user: required(string(), 'app_rw'),
      password: password(opts.baseDir).optional(),
      tls: withDefault(oneOf(TLS_MODES), 'prefer'),
      tlsCa: path(opts.baseDir, '/etc/ssl/db-ca.pem').optional(),
      connectTimeout: withDefault(duration({min: 1000, max: 10 * 60_000}), DEFAULT_CONNECT_TIMEOUT_MS),
      allow: groups.optional(),
      reviewers: withDefault(groups, []),
      policy: withDefault(oneOf(POLICY_PACKS), 'default'),
      rules: withDefault(list(rule, {uniqueKey: {key: 'id', what: 'rule id'}}), []),
      masking: masking.optional(),
      approvals: approvals.optional(),
      tunnel: tunnelOverrides.optional(),
      mcp: mcp.optional(),
    },
    {
      check(t, report) {
        if (t.host.startsWith('/') && (t.tls === 'require' || t.tls === 'verify-full')) {
          report(
            {
              kind: 'insecure',
              message: `host ${t.host} is a unix socket directory, which carries no TLS (as with libpq), but tls is ${t.tls}`,
              fix: 'set "tls: disable" (the socket itself is private to the machine), or give a host name or address for TLS',
            },
            'tls',
          )
        }
        if (t.password !== undefined && 'rdsIam' in t.password && t.tls !== 'require' && t.tls !== 'verify-full') {
          // Located at `tls` when it is written, else at the target (its default, prefer, applies).
          report(
            {
              kind: 'insecure',
              message: `RDS IAM authentication (password: {rdsIam: …}) needs TLS to the database, and RDS refuses IAM tokens without it; tls is ${t.tls}`,
              fix: 'set "tls: verify-full" with "tlsCa:" the RDS certificate bundle (or at least "tls: require")',
            },
            'tls',
          )
        }
      },
    },
  )
}

type RawTarget = z.output<ReturnType<typeof target>>

const NO_MASKING = {unmask: [], mask: [], unmaskColumns: [], strategies: {}, onUntraceable: 'mask' as const}

/** A target as dbgate runs it: its rules with ids and where they were written, the top-level tunnel limits under its own. */
function buildTarget(name: string, t: RawTarget, tunnel: RawTunnel, opts: SchemaOptions, report: (d: Diagnostic, path: KeyPath) => void) {
  const seen = new Map<string, number>()
  const rules = t.rules.map((r, i) => {
    const id = r.id ?? `${name}.rules[${i}]`
    const first = seen.get(id)
    // Explicit duplicates were reported by the list itself; this catches an explicit id equal to
    // another rule's default one.
    if (first !== undefined) report({kind: 'duplicate', message: `duplicate rule id ${JSON.stringify(id)}`, fix: '', sameAs: first, at: 'key'}, ['targets', name, 'rules', i, 'id'])
    else seen.set(id, i)
    const source: SourceLocation = {file: opts.file, ...opts.positionOf(['targets', name, 'rules', i])}
    return {
      /** The configured id, or `<target>.rules[<i>]`. Unique within a target. */
      id,
      match: r.match,
      action: r.action,
      ...(r.reason !== undefined ? {reason: r.reason} : {}),
      /** Where the rule was written, so decisions can cite it. */
      source,
    }
  })
  const rdsIam = t.password && 'rdsIam' in t.password ? t.password.rdsIam : undefined
  const password = t.password && !('rdsIam' in t.password) ? t.password : undefined
  return {
    name,
    host: t.host,
    port: t.port,
    database: t.database,
    user: t.user,
    ...(password ? {password} : {}),
    /** Set by `password: {rdsIam: …}`: the password is an AWS RDS IAM token, made for every upstream connection. */
    ...(rdsIam ? {rdsIam} : {}),
    tls: t.tls,
    ...(t.tlsCa !== undefined ? {tlsCa: t.tlsCa} : {}),
    connectTimeoutMs: t.connectTimeout,
    ...(t.allow !== undefined ? {allow: t.allow} : {}),
    reviewers: t.reviewers,
    policy: t.policy,
    rules,
    masking: t.masking ?? (structuredClone(NO_MASKING) as z.output<typeof masking>),
    approvals: t.approvals ?? ({expiryMs: DEFAULT_APPROVAL_EXPIRY_MS, windows: false} as z.output<typeof approvals>),
    ...(t.mcp ? {mcp: t.mcp} : {}),
    tunnel: tunnelConfig(tunnel, t.tunnel),
  }
}

/**
 * What a target may do, as published to the bucket and signed (src/policy/published.ts): the
 * target's rules, masking and approvals in the form dbgate runs them (every list a list, every
 * default written out, durations in ms), checked by the same pieces as dbgate.yaml. Strict, so a
 * condition this dbgate does not know fails the document rather than being ignored, which would
 * widen the rule it narrows.
 */
export const policyBody = object({
  policy: required(oneOf(POLICY_PACKS), 'default'),
  rules: required(
    list(object({id: required(ruleId, 'no-ddl'), match: required(ruleMatch, '{class: ddl}'), action: required(ruleAction, 'deny'), reason: string().optional()})),
    '[]',
  ),
  allow: list(groupName).optional(),
  reviewers: required(list(groupName), '[]'),
  masking: required(
    object({
      unmask: required(list(groupName), '[]'),
      mask: required(list(columnGlob), '[]'),
      unmaskColumns: required(list(columnGlob), '[]'),
      strategies: required(strategies, '{}'),
      onUntraceable: required(oneOf(UNTRACEABLE_ACTIONS), 'mask'),
    }),
    '{…}',
  ),
  approvals: required(object({expiryMs: required(integer({min: 1000}), '900000'), windows: required(boolean(), 'false'), webhook: webhook.optional()}), '{…}'),
})

/** `host:port`, for a listener; IPv6 in brackets. */
function hostPort(example: string, opts: {off?: boolean} = {}) {
  return scalar(`host:port such as ${example}`, (v, report): {host: string; port: number} | null | undefined | typeof FAILED => {
    if (opts.off && (v === 'off' || v === false)) return null
    if (typeof v !== 'string') return undefined
    const m = /^(?:\[([^\]]+)\]|([^:\s]+)):(\d{1,5})$/.exec(v)
    const port = m ? Number(m[3]) : NaN
    if (!m || port > 65535) return report({kind: 'format', message: `expected host:port such as ${example}, got ${JSON.stringify(v)}`, fix: `write the address and port, e.g. ${example} (0.0.0.0 listens on every interface)`})
    return {host: (m[1] ?? m[2])!, port}
  })
}

const listener = (example: string) => hostPort(example) as z.ZodType<{host: string; port: number}, unknown>

/** `server.mcp`: the MCP tools over Streamable HTTP, the gateway acting as an OAuth resource server. */
const gatewayMcp = object({
  /** The origin agents reach the API at; the resource URL of a target is `<publicUrl>/mcp/<target>`. */
  publicUrl: required(string({pattern: /^https:\/\/[^/\s?#]+$/, expected: 'the https:// origin agents reach the API at, such as https://gw.example.com:8443 (no path)'}), 'https://gw.example.com:8443'),
  /** Browser origins allowed to call (requests with any other Origin header are refused). */
  allowedOrigins: withDefault(list(string({pattern: /^https?:\/\/[^/\s]+$/, expected: 'a browser origin such as https://app.example.com'})), []),
  /** MCP sessions open at once. */
  maxSessions: withDefault(integer({min: 1, max: 100_000}), 200),
  /** MCP sessions one person keeps open at once; opening another ends their least recently used one. */
  maxSessionsPerPerson: withDefault(integer({min: 1, max: 100_000}), 16),
})

/**
 * `server:` in a gateway's configuration (`dbgate gateway --config gateway.yaml`): where it listens,
 * its TLS material, its signing key and how long sessions may last. See docs/gateway.md.
 */
function server(opts: SchemaOptions) {
  const section = object({
    name: string({pattern: /^[\w.@-]+$/, expected: 'a name of letters, digits, ".", "_", "@" or "-"'}).optional(),
    listen: withDefault(listener('0.0.0.0:6432'), {host: '0.0.0.0', port: DEFAULT_GATEWAY_PORT}),
    tls: required(
      object({cert: required(path(opts.baseDir, '/etc/dbgate/tls.crt'), '/etc/dbgate/tls.crt'), key: required(path(opts.baseDir, '/etc/dbgate/tls.key'), '/etc/dbgate/tls.key')}),
      '{cert: /etc/dbgate/tls.crt, key: /etc/dbgate/tls.key}',
    ),
    api: listener('0.0.0.0:8443').optional(),
    signingKey: secretRef(opts.baseDir).optional(),
    stateDir: path(opts.baseDir, '/var/lib/dbgate').optional(),
    maxSessionDuration: withDefault(duration({min: 1000}), DEFAULT_MAX_SESSION_DURATION_MS),
    sessionOutlivesToken: withDefault(boolean(), false),
    pipelineIdle: withDefault(duration({min: 0, max: 3600_000}), DEFAULT_PIPELINE_IDLE_MS),
    maxSessionsPerPerson: withDefault(integer({min: 1, max: 100_000}), DEFAULT_GATEWAY_LISTENER.maxSessionsPerPerson),
    signInTimeout: withDefault(duration({min: 1000, max: 600_000}), DEFAULT_GATEWAY_LISTENER.signInTimeoutMs),
    maxPendingSignIns: withDefault(integer({min: 1, max: 100_000}), DEFAULT_GATEWAY_LISTENER.maxPendingSignIns),
    maxPendingSignInsPerAddress: withDefault(integer({min: 1, max: 100_000}), DEFAULT_GATEWAY_LISTENER.maxPendingSignInsPerAddress),
    mcp: gatewayMcp.optional(),
    ops: withDefault(hostPort('127.0.0.1:9187', {off: true}), DEFAULT_OPS_LISTEN),
    drainTimeout: withDefault(duration({min: 0, max: 24 * 3600_000}), DEFAULT_DRAIN_TIMEOUT_MS),
    runningStatementGrace: withDefault(duration({min: 0, max: 7 * 24 * 3600_000}), DEFAULT_RUNNING_STATEMENT_GRACE_MS),
    peers: withDefault(list(hostPort('gw-peers.dbgate.svc:6432') as z.ZodType<{host: string; port: number}, unknown>), []),
    log: withDefault(object({level: withDefault(oneOf(['debug', 'info', 'warn', 'error'] as const), 'info')}), {level: 'info' as const}),
  })
  return map(section, (v, report) => {
    if (v.mcp && !v.api) {
      return report(
        {
          kind: 'missing-key',
          message: 'server.mcp serves agents on the HTTPS API listener, but server.api is not set',
          fix: 'add server.api: 0.0.0.0:8443 (and make server.mcp.publicUrl the address agents reach it at)',
        },
        ['mcp'],
      )
    }
    if (v.maxPendingSignInsPerAddress > v.maxPendingSignIns) {
      return report(
        {
          kind: 'impossible-rule',
          message: `server.maxPendingSignInsPerAddress (${v.maxPendingSignInsPerAddress}) is larger than server.maxPendingSignIns (${v.maxPendingSignIns}), so one address could hold every connection not yet signed in`,
          fix: `lower server.maxPendingSignInsPerAddress to at most ${v.maxPendingSignIns}, or raise server.maxPendingSignIns`,
        },
        ['maxPendingSignInsPerAddress'],
      )
    }
    return {
      /** The name the gateway's signing key is published under (default: the host name). */
      name: v.name ?? hostname(),
      listen: v.listen,
      tls: v.tls,
      /** The HTTPS API (`GET /v1/targets`); same certificate. Absent: no API. */
      ...(v.api ? {api: v.api} : {}),
      /** A PEM Ed25519 private key that signs the recordings; default: one created in `stateDir`. */
      ...(v.signingKey ? {signingKey: v.signingKey} : {}),
      /** Keys, spool and caches of the gateway (default: `gateway/` in the user's data directory). */
      ...(v.stateDir ? {stateDir: v.stateDir} : {}),
      maxSessionDurationMs: v.maxSessionDuration,
      sessionOutlivesToken: v.sessionOutlivesToken,
      /** How long a pipeline (catalog connection, recorder, approval poller) outlives its last session. */
      pipelineIdleMs: v.pipelineIdle,
      /** PostgreSQL-listener sessions one person (the token's issuer and subject) may have open at once. */
      maxSessionsPerPerson: v.maxSessionsPerPerson,
      /** The TLS handshake, the startup packet and the token must all arrive within this of the connection opening. */
      signInTimeoutMs: v.signInTimeout,
      /** Connections on the PostgreSQL listener not signed in yet, in all and from one address. */
      maxPendingSignIns: v.maxPendingSignIns,
      maxPendingSignInsPerAddress: v.maxPendingSignInsPerAddress,
      /** The ops endpoint (/healthz, /readyz, /metrics), plain HTTP; null: none (`ops: off`). */
      ops: v.ops,
      /** How long SIGTERM lets open sessions finish before ending them. */
      drainTimeoutMs: v.drainTimeout,
      /**
       * How long the statement running when a session ends (maxSessionDuration, the token's expiry, a
       * withdrawn signing key) may run on; then it is cancelled and the connection closed.
       */
      runningStatementGraceMs: v.runningStatementGrace,
      /**
       * The other replicas' PostgreSQL listeners (a name may stand for several, one per address): a
       * CancelRequest whose key no session here holds is passed on to them (docs/gateway.md, Deployment).
       */
      peers: v.peers,
      /** Lowest level of the JSON log lines on standard output (`log.level`). */
      logLevel: v.log.level,
      /** Remote MCP for agents on the API listener (docs/agents.md); absent: none. */
      ...(v.mcp ? {mcp: v.mcp} : {}),
    }
  })
}

/**
 * `gateway:` in a client's configuration: `dbgate connect` carries each session to this gateway over
 * TLS with the person's token, and `dbgate targets` asks it which targets they may use. Such a
 * configuration has no targets, so no database credentials.
 */
function gatewayClient(opts: SchemaOptions) {
  return object({
    address: required(listener('gw.internal:6432'), 'gw.internal:6432'),
    /** PEM file of the CA that signed the gateway's certificate (default: the system's CAs). */
    ca: path(opts.baseDir, '/etc/dbgate/gateway-ca.pem').optional(),
    api: listener('gw.internal:8443').optional(),
  }).transform((v) => ({address: v.address, ...(v.ca ? {ca: v.ca} : {}), api: v.api ?? {host: v.address.host, port: DEFAULT_GATEWAY_API_PORT}}))
}

const recording = object({
  previewRows: withDefault(integer({min: 0}), DEFAULT_PREVIEW_ROWS),
  // Key ids or gateway names (src/audit/trust.ts); absent: every published key may sign.
  trustedSigners: list(string({pattern: /^\S+$/, expected: 'a key id (32 hex digits) or a gateway name', fix: 'write the key id from keys/<key-id>.json, or the name of a gateway'}), {min: 1}).optional(),
})

/** The whole file. */
export function dbgateSchema(opts: SchemaOptions) {
  const root = object(
    {
      server: server(opts).optional(),
      identity: identity(opts).optional(),
      bucket: bucket.optional(),
      recording: withDefault(recording, {previewRows: DEFAULT_PREVIEW_ROWS}),
      tunnel: withDefault(tunnelDefaults, {
        maxMessageSize: DEFAULT_TUNNEL.maxMessageSize,
        maxStatementSize: DEFAULT_TUNNEL.maxStatementSize,
        authTimeout: DEFAULT_TUNNEL.authTimeoutMs,
        maxClientConnections: DEFAULT_TUNNEL.maxClientConnections,
        maxUpstreamSessions: DEFAULT_TUNNEL.maxUpstreamSessions,
        upstreamQueueTimeout: DEFAULT_TUNNEL.upstreamQueueTimeoutMs,
        changeWait: DEFAULT_TUNNEL.changeWaitMs,
      }),
      gateway: gatewayClient(opts).optional(),
      targets: record(target(opts), {pattern: TARGET_NAME, nameRule: 'letters, digits, "_" and "-", starting with a letter or digit', min: 1, exampleKey: 'prod'}).optional(),
    },
    {
      check(v, report) {
        // Targets are required, except of a gateway's client: the gateway holds them (and their credentials).
        if (v.targets === undefined && v.gateway === undefined) {
          report({kind: 'missing-key', message: 'missing required key "targets" in the top level', fix: 'add "targets: {prod: {host: …, database: …, user: …}}"'}, 'targets')
        }
        if (v.targets !== undefined && v.gateway !== undefined) {
          report(
            {
              kind: 'impossible-rule',
              message: 'a configuration that names a gateway has no targets of its own: the gateway holds them and their credentials',
              fix: "remove targets (run `dbgate targets` to see the gateway's), or remove gateway to connect directly",
            },
            'targets',
          )
        }
      },
    },
  )
  return map(root, (raw, report) => {
    type Target = ReturnType<typeof buildTarget>
    /** Null-prototype map, so a lookup like `targets['constructor']` cannot hit Object.prototype. */
    const targets = Object.create(null) as Record<string, Target>
    let ok = true
    for (const [name, t] of Object.entries(raw.targets ?? {})) {
      targets[name] = buildTarget(name, t, raw.tunnel, opts, (d, path) => {
        ok = false
        report(d, path)
      })
    }
    if (!ok) return FAILED
    return {
      /** Present in a gateway's configuration only. */
      ...(raw.server ? {server: raw.server} : {}),
      /** Present in the configuration of a client of a gateway, instead of targets. */
      ...(raw.gateway ? {gateway: raw.gateway} : {}),
      ...(raw.identity ? {identity: raw.identity} : {}),
      bucket: raw.bucket ?? {url: opts.defaultBucketUrl},
      recording: {previewRows: raw.recording.previewRows, ...(raw.recording.trustedSigners ? {trustedSigners: raw.recording.trustedSigners} : {})},
      tunnel: tunnelConfig(raw.tunnel),
      targets,
    }
  })
}

export interface ConfigWarning {
  kind: 'inline-secret' | 'ineffective' | 'insecure'
  path: KeyPath
  at: 'value' | 'key'
  message: string
  fix: string
}

/**
 * What a valid file should still change: a secret written in it, a setting that has no effect, a
 * bucket reached over plain http. Read from the file's values as written, beside the schema,
 * because a warning must not stop the rest of the file from loading. `failed(path)` says whether
 * a section had errors; its cross-field warnings are then left out, as its checks are.
 */
export function configWarnings(raw: unknown, baseDir: string, failed: (path: KeyPath) => boolean): ConfigWarning[] {
  const out: ConfigWarning[] = []
  const at = (v: unknown, key: string): unknown => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>)[key] : undefined)
  const inline = (v: unknown, path: KeyPath) => {
    if (typeof v !== 'string' || v === '') return
    const read = readSecret(v, baseDir)
    if ('ref' in read && read.ref.kind === 'inline') {
      out.push({kind: 'inline-secret', path, at: 'value', message: 'secret written in plain text in the config file', fix: 'move it out of the file and write env:VAR, file:/path or keychain:NAME instead'})
    }
  }
  inline(at(at(raw, 'identity'), 'clientSecret'), ['identity', 'clientSecret'])
  inline(at(at(raw, 'server'), 'signingKey'), ['server', 'signingKey'])
  const endpoint = at(at(raw, 'bucket'), 'endpoint')
  if (typeof endpoint === 'string' && endpoint.startsWith('http:') && !failed(['bucket']) && isLoopbackNameHttp(endpoint)) {
    out.push({kind: 'insecure', path: ['bucket', 'endpoint'], at: 'key', message: 'plain http endpoint named localhost: the name may reach ::1, where any local user may listen at that port while the bucket listens on 127.0.0.1, and take the recordings', fix: 'write the address the bucket listens on instead, such as http://127.0.0.1:9000'})
  } else if (typeof endpoint === 'string' && endpoint.startsWith('http:') && !failed(['bucket']) && !isLoopbackHttp(endpoint)) {
    out.push({kind: 'insecure', path: ['bucket', 'endpoint'], at: 'key', message: 'plain http endpoint: recordings travel to the bucket unencrypted', fix: 'use an https:// endpoint (plain http is fine for a loopback address)'})
  }
  const targets = at(raw, 'targets')
  if (typeof targets !== 'object' || targets === null || Array.isArray(targets)) return out
  for (const [name, t] of Object.entries(targets)) {
    inline(at(t, 'password'), ['targets', name, 'password'])
    const tls = at(t, 'tls') ?? 'prefer'
    if (at(t, 'tlsCa') !== undefined && (tls === 'disable' || tls === 'prefer') && !failed(['targets', name])) {
      out.push({kind: 'ineffective', path: ['targets', name, 'tlsCa'], at: 'key', message: `tlsCa has no effect with tls: ${String(tls)}; the server certificate is not verified`, fix: 'set "tls: verify-full" (or require), or remove tlsCa'})
    }
  }
  return out
}
