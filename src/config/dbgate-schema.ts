/**
 * The shape of dbgate.yaml, declared once. To add a section: declare it with `object({...})` below,
 * add it to `root`, and give it a typed form in `types.ts`; unknown keys, types, defaults and
 * locations in messages come for free.
 */
import {hostname} from 'node:os'
import {isAbsolute, resolve} from 'node:path'
import {fileURLToPath} from 'node:url'
import {isMap, isScalar, type Node} from 'yaml'
import {
  INVALID,
  boolean,
  byShape,
  integer,
  list,
  map,
  object,
  oneOf,
  oneOrList,
  optional,
  record,
  required,
  scalar,
  string,
  withDefault,
  type Context,
  type Infer,
  type Invalid,
  type Schema,
} from './yaml-validation.js'
import {parseSecretSource, SECRET_SOURCE_KINDS} from './secret-ref.js'
import {closest} from './suggest.js'
import {
  CLIENT_KINDS,
  MCP_MODES,
  CONDITIONAL_WRITE_MODES,
  MASKING_CATEGORIES,
  MASKING_STRATEGIES,
  OBJECT_LOCK_MODES,
  POLICY_PACKS,
  RULE_ACTIONS,
  STATEMENT_CLASSES,
  TLS_MODES,
  TOKEN_KINDS,
  UNTRACEABLE_ACTIONS,
  WHERE_KINDS,
  type BucketConfig,
  type DbgateConfig,
  type GatewayClientConfig,
  type GatewayServerConfig,
  type MaskingCategory,
  type MaskingStrategy,
  type McpConfig,
  type RdsIamConfig,
  type RuleConfig,
  type SecretRef,
  type TargetConfig,
  type TunnelConfig,
} from './types.js'
import {DURATION_EXAMPLES} from '../util/duration.js'
import {isLoopbackHttp} from '../util/loopback.js'
import {formatDuration, formatSize, parseDuration, parseSize, suggestSize} from './units.js'
import {DEFAULT_TUNNEL_LIMITS} from '../proxy/limits.js'

export const TARGET_NAME = /^[a-z0-9][a-z0-9_-]*$/i
export const DEFAULT_SCOPES = ['openid', 'profile', 'email', 'offline_access']
export const DEFAULT_PORT = 5432
export const DEFAULT_CLOCK_SKEW_MS = 60_000
export const DEFAULT_APPROVAL_EXPIRY_MS = 15 * 60_000
export const DEFAULT_PREVIEW_ROWS = 5
/** How long `dbgate connect` waits for a target's database to answer (libpq's connect_timeout, which has no default, would wait forever). */
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000
/** An agent reads, in pages small enough for a prompt, unless the target says otherwise. */
export const DEFAULT_MCP: McpConfig = {mode: 'read-only', maxRows: 200, maxBytes: 256 * 1024, timeoutMs: 30_000, approvalWaitMs: 5_000}
export const DEFAULT_TUNNEL: TunnelConfig = {maxMessageSize: 1024 ** 3, maxStatementSize: 1024 ** 2, ...DEFAULT_TUNNEL_LIMITS}
/** PostgreSQL message lengths are signed 32-bit integers, so no message can be larger. */
const MAX_PROTOCOL_MESSAGE = 2 ** 31 - 1

export interface SchemaOptions {
  /** Relative paths (tlsCa, file: secrets) are resolved against this directory: the config file's. */
  baseDir: string
  /** `bucket` when the file has none: file://<user data dir>/bucket. */
  defaultBucketUrl: string
}

function duration(opts: {min?: number; max?: number} = {}): Schema<number> {
  const expected = `a duration such as ${DURATION_EXAMPLES} (or whole seconds)`
  return scalar(expected, (v, node, at, cx) => {
    if (typeof v !== 'string' && typeof v !== 'number') return undefined
    const ms = parseDuration(v)
    if (ms === undefined) return cx.error('format', node, at.path, `expected ${expected}, got ${JSON.stringify(v)}`, 'write amounts with a unit (y, w, d, h, m, s), largest first, e.g. 15m or 1h30m')
    if ((opts.min !== undefined && ms < opts.min) || (opts.max !== undefined && ms > opts.max)) {
      const bounds = [opts.min !== undefined ? `at least ${formatDuration(opts.min)}` : '', opts.max !== undefined ? `at most ${formatDuration(opts.max)}` : ''].filter(Boolean).join(' and ')
      return cx.error('range', node, at.path, `expected a duration ${bounds}, got ${JSON.stringify(v)}`, `write a duration ${bounds}`)
    }
    return ms
  })
}

function size(opts: {min: number; max: number}): Schema<number> {
  const expected = 'a size such as 512KiB, 1MiB or 1GiB (or whole bytes)'
  return scalar(expected, (v, node, at, cx) => {
    if (typeof v !== 'string' && typeof v !== 'number') return undefined
    const bytes = parseSize(v)
    if (bytes === undefined) {
      const suggestion = typeof v === 'string' ? suggestSize(v) : undefined
      return cx.error(
        'format',
        node,
        at.path,
        `expected ${expected}, got ${JSON.stringify(v)}${suggestion ? `; did you mean "${suggestion}"?` : ''}`,
        suggestion ? `write "${suggestion}" (sizes use binary units B, KiB, MiB, GiB)` : 'write a whole number followed by B, KiB, MiB or GiB',
      )
    }
    if (bytes < opts.min || bytes > opts.max) {
      return cx.error('range', node, at.path, `expected a size between ${formatSize(opts.min)} and ${formatSize(opts.max)}, got ${JSON.stringify(v)}`, `write a size between ${formatSize(opts.min)} and ${formatSize(opts.max)}`)
    }
    return bytes
  })
}

/** An https URL; plain http only for loopback, where nothing crosses a network. */
function httpsUrl(opts: {what: string; example: string; noQuery?: boolean}): Schema<string> {
  const expected = `an https URL such as ${opts.example}`
  return scalar(expected, (v, node, at, cx) => {
    if (typeof v !== 'string') return undefined
    let url: URL
    try {
      url = new URL(v)
    } catch {
      return cx.error('format', node, at.path, `expected ${expected}, got ${JSON.stringify(v)}`, `write the full ${opts.what} URL, starting with https://`)
    }
    if (url.protocol === 'http:' && !isLoopbackHttp(url)) {
      return cx.error('format', node, at.path, `plain http is only allowed for loopback hosts, got ${JSON.stringify(v)}`, `use https:// for the ${opts.what}`)
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      return cx.error('format', node, at.path, `expected ${expected}, got ${JSON.stringify(v)}`, `write the ${opts.what} URL starting with https://`)
    }
    if (opts.noQuery && (url.search || url.hash)) {
      return cx.error('format', node, at.path, `the ${opts.what} URL must not have a query or fragment, got ${JSON.stringify(v)}`, 'remove everything from "?" or "#" on')
    }
    return v
  })
}

/** A filesystem path; relative ones are taken from the config file's directory, not the cwd. */
function path(baseDir: string, example: string): Schema<string> {
  return map(string({expected: `a file path such as ${example}`}), (p) => (isAbsolute(p) ? p : resolve(baseDir, p)))
}

/**
 * `env:VAR`, `file:/path` or `keychain:NAME`. A plain string is accepted as the secret itself but
 * warned about, because config files get committed and shared.
 */
/** AWS region names: `eu-west-1`, `us-gov-west-1`, `cn-north-1`, `ap-southeast-4`. */
const AWS_REGION = /^[a-z]{2}(?:-[a-z]+)+-\d+$/

const rdsIamPassword = object({
  rdsIam: required(
    object({
      region: required(string({pattern: AWS_REGION, expected: 'an AWS region such as eu-west-1'}), 'eu-west-1'),
      profile: optional(string({pattern: /^\S+$/, expected: 'an AWS profile name'})),
    }),
    '{region: eu-west-1}',
  ),
})

/** A target's password: a secret source, or `{rdsIam: {region, profile?}}` for a token made per connection. */
function password(baseDir: string): Schema<SecretRef | {rdsIam: RdsIamConfig}> {
  return byShape<SecretRef | {rdsIam: RdsIamConfig}>(
    {scalar: secretRef(baseDir), map: rdsIamPassword},
    'a secret source (env:VAR, file:/path, keychain:NAME) or {rdsIam: {region: …}}',
  )
}

function secretRef(baseDir: string): Schema<SecretRef> {
  const expected = 'a secret source: env:VAR, file:/path or keychain:NAME'
  return scalar(
    expected,
    (v, node, at, cx) => {
      if (typeof v !== 'string' || v === '') return undefined
      const parsed = parseSecretSource(v, baseDir)
      if (!parsed.ok) return cx.error('format', node, at.path, parsed.message, parsed.fix)
      if (parsed.ref.kind !== 'inline') return parsed.ref
      const kind = /^([a-z]+):/.exec(v)?.[1]
      // "evn:X" is far likelier a typo than a password that happens to look like a source. The
      // message does not echo the prefix: in the unlikely other case it is part of a password.
      const typo = kind && kind.length >= 3 ? closest(kind, SECRET_SOURCE_KINDS) : undefined
      if (typo) return cx.error('enum', node, at.path, `unknown secret source prefix; did you mean "${typo}:"?`, `write ${typo}:${typo === 'file' ? '/path' : 'NAME'}`)
      cx.report(
        'warning',
        'inline-secret',
        node,
        at.path,
        'secret written in plain text in the config file',
        'move it out of the file and write env:VAR, file:/path or keychain:NAME instead',
      )
      return parsed.ref
    },
    {secret: true, fix: 'write env:VAR, file:/path or keychain:NAME'},
  )
}

const groups = oneOrList(string({expected: 'a group name'}))
const glob = (example: string) => string({pattern: /^\S+$/, expected: `a glob without spaces such as ${example}`})
const columnGlob = string({
  pattern: /^[^.\s]+\.[^.\s]+\.[^.\s]+$/,
  expected: 'a column glob schema.table.column such as public.users.email',
  fix: 'write three dot-separated parts: schema.table.column (use * as a wildcard)',
})

function identity(opts: SchemaOptions) {
  return map(
    object(
      {
        issuer: required(httpsUrl({what: 'issuer', example: 'https://login.example.com', noQuery: true}), 'https://login.example.com'),
        clientId: required(string(), 'dbgate-cli'),
        clientSecret: optional(secretRef(opts.baseDir)),
        scopes: withDefault(list(string({pattern: /^\S+$/, expected: 'a scope name'}), {min: 1}), DEFAULT_SCOPES),
        groupsClaim: withDefault(string({pattern: /^[^.\s]+(\.[^.\s]+)*$/, expected: 'a claim name or dotted path such as realm_access.roles'}), 'groups'),
        audience: optional(string()),
        verify: withDefault(oneOf(TOKEN_KINDS), 'id_token'),
        clockSkew: withDefault(duration({max: 10 * 60_000}), DEFAULT_CLOCK_SKEW_MS),
      },
      {
        check(v, _at, cx) {
          // Without the openid scope the IdP issues no ID token, so verify: id_token could never pass.
          if (v.verify === 'id_token' && !v.scopes.includes('openid')) {
            const {node, path} = cx.locate(v, 'scopes')
            cx.error('impossible-rule', node, path, 'scopes lack "openid", so no ID token is issued and verify: id_token cannot succeed', 'add openid to scopes')
          }
        },
      },
    ),
    (v) => ({
      issuer: v.issuer,
      clientId: v.clientId,
      ...(v.clientSecret ? {clientSecret: v.clientSecret} : {}),
      scopes: v.scopes,
      groupsClaim: v.groupsClaim,
      audience: v.audience ?? v.clientId,
      verify: v.verify,
      clockSkewMs: v.clockSkew,
    }),
  )
}

const S3_BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/

function bucketUrl(): Schema<string> {
  const expected = 'a bucket URL: file:///absolute/path or s3://bucket/prefix'
  return scalar(expected, (v, node, at, cx) => {
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
        return cx.error('format', node, at.path, `file bucket URLs need an absolute local path, got ${JSON.stringify(v)}`, 'write file:///absolute/path (three slashes)')
      }
      return v
    }
    if (url?.protocol === 's3:') {
      if (!S3_BUCKET.test(url.hostname)) {
        return cx.error('format', node, at.path, `invalid S3 bucket name ${JSON.stringify(url.hostname)}`, 'use 3-63 lowercase letters, digits, dots or hyphens: s3://bucket/prefix')
      }
      return v
    }
    return cx.error('format', node, at.path, `expected ${expected}, got ${JSON.stringify(v)}`, 'write file:///absolute/path or s3://bucket/prefix')
  })
}

function bucket() {
  const objectForm = object(
    {
      url: required(bucketUrl(), 's3://bucket/prefix'),
      endpoint: optional(
        scalar('an http(s) URL such as http://127.0.0.1:9000', (v) => {
          if (typeof v !== 'string') return undefined
          try {
            const u = new URL(v)
            return u.protocol === 'https:' || u.protocol === 'http:' ? v : undefined
          } catch {
            return undefined
          }
        }),
      ),
      region: optional(string({pattern: /^[a-z0-9-]+$/, expected: 'a region such as us-east-1'})),
      forcePathStyle: optional(boolean()),
      objectLock: optional(object({mode: required(oneOf(OBJECT_LOCK_MODES), 'GOVERNANCE'), days: required(integer({min: 1, max: 36_500}), '365')})),
      conditionalWrites: optional(oneOf(CONDITIONAL_WRITE_MODES)),
    },
    {
      check(v, _at, cx) {
        if (v.endpoint?.startsWith('http:') && !isLoopbackHttp(v.endpoint)) {
          const {node, path} = cx.locate(v, 'endpoint')
          cx.report('warning', 'insecure', node, path, 'plain http endpoint: recordings travel to the bucket unencrypted', 'use an https:// endpoint (plain http is fine for a loopback one)')
        }
        if (!v.url.startsWith('s3:')) {
          for (const key of ['endpoint', 'region', 'forcePathStyle', 'objectLock', 'conditionalWrites'] as const) {
            if (v[key] === undefined) continue
            const {node, path} = cx.locate(v, key)
            cx.error('impossible-rule', node, path, `"${key}" only applies to s3:// buckets`, `remove "${key}", or use an s3:// url`)
          }
        }
      },
    },
  )
  return byShape<BucketConfig>(
    {
      scalar: map(bucketUrl(), (url) => ({url})),
      map: map(objectForm, (v) => {
        const out: BucketConfig = {url: v.url}
        if (v.endpoint !== undefined) out.endpoint = v.endpoint
        if (v.region !== undefined) out.region = v.region
        if (v.forcePathStyle !== undefined) out.forcePathStyle = v.forcePathStyle
        if (v.objectLock !== undefined) out.objectLock = v.objectLock
        if (v.conditionalWrites !== undefined) out.conditionalWrites = v.conditionalWrites
        return out
      }),
    },
    'a bucket URL (file:///path or s3://bucket/prefix) or a map with url, endpoint, region, …',
  )
}

function classHint(got: string): string | undefined {
  return /^[a-z]+$/.test(got)
    ? `write one of ${STATEMENT_CLASSES.join(', ')}; to match a statement kind such as "${got}", use command: ${got} (with class: write for data changes)`
    : undefined
}

const rule = object(
  {
    id: optional(string({expected: 'a rule id'})),
    match: required(
      object(
        {
          class: optional(oneOrList(oneOf(STATEMENT_CLASSES, {hint: classHint}))),
          command: optional(oneOrList(string({pattern: /^[a-z]+( [a-z]+)*$/, expected: 'a lowercase statement kind such as drop or truncate'}))),
          tables: optional(oneOrList(glob('public.users or audit.*'))),
          functions: optional(oneOrList(glob('pg_*'))),
          groups: optional(groups),
          where: optional(oneOf(WHERE_KINDS)),
          settings: optional(oneOrList(glob('search_path or app.*'))),
          client: optional(oneOrList(oneOf(CLIENT_KINDS))),
        },
        {
          nonEmpty: 'an empty match would apply the rule to every statement',
          check(m, _at, cx) {
            if (m.where === undefined) return
            const classes = m.class ?? []
            if (classes.length === 1 && classes[0] === 'write') return
            const {node, path} = cx.locate(m, 'where')
            const got = classes.length === 0 ? 'no class is set' : `class is ${classes.join(', ')}`
            cx.error('impossible-rule', node, path, `impossible rule: "where" only applies to class write, but ${got}`, 'set "class: write" in this match, or remove "where"')
          },
        },
      ),
      '{class: ddl}',
    ),
    action: required(oneOf(RULE_ACTIONS), 'deny'),
    reason: optional(string()),
  },
)

function masking() {
  const strategies = map(
    record(oneOf(MASKING_STRATEGIES), {pattern: /^[a-z_]+$/, nameRule: 'a category name', exampleKey: 'email'}),
    (entries, at, cx, node): Partial<Record<MaskingCategory, MaskingStrategy>> | Invalid => {
      const out: Partial<Record<MaskingCategory, MaskingStrategy>> = {}
      let ok = true
      for (const [category, strategy] of entries) {
        if ((MASKING_CATEGORIES as readonly string[]).includes(category)) {
          out[category as MaskingCategory] = strategy
          continue
        }
        ok = false
        const keyNode = findKeyNode(node, category)
        const suggestion = closest(category, MASKING_CATEGORIES)
        cx.error(
          'unknown-key',
          keyNode ?? node,
          [...at.path, category],
          `unknown masking category "${category}"${suggestion ? `; did you mean "${suggestion}"?` : ''}`,
          suggestion ? `rename it to "${suggestion}"` : `use one of: ${MASKING_CATEGORIES.join(', ')}`,
        )
      }
      return ok ? out : INVALID
    },
  )
  return object({
    unmask: withDefault(groups, []),
    mask: withDefault(oneOrList(columnGlob), []),
    unmaskColumns: withDefault(oneOrList(columnGlob), []),
    strategies: withDefault(strategies, {}),
    onUntraceable: withDefault(oneOf(UNTRACEABLE_ACTIONS), 'mask'),
  })
}

function findKeyNode(node: Node | null, key: string): Node | null {
  if (!node || !('items' in node) || !Array.isArray(node.items)) return null
  for (const pair of node.items as {key?: Node & {value?: unknown}}[]) {
    if (pair.key && String(pair.key.value) === key) return pair.key
  }
  return null
}

/** The `tunnel` keys: at the top level every one has its default, under a target each may override it. */
function tunnelKeys() {
  return {
    maxMessageSize: size({min: 1024, max: MAX_PROTOCOL_MESSAGE}),
    maxStatementSize: size({min: 1, max: MAX_PROTOCOL_MESSAGE}),
    authTimeout: duration({min: 1000, max: 3_600_000}),
    maxClientConnections: integer({min: 1, max: 100_000}),
    maxUpstreamSessions: integer({min: 1, max: 10_000}),
    upstreamQueueTimeout: duration({min: 0, max: 3_600_000}),
  }
}

const tunnelDefaults = () => {
  const k = tunnelKeys()
  return object({
    maxMessageSize: withDefault(k.maxMessageSize, DEFAULT_TUNNEL.maxMessageSize),
    maxStatementSize: withDefault(k.maxStatementSize, DEFAULT_TUNNEL.maxStatementSize),
    authTimeout: withDefault(k.authTimeout, DEFAULT_TUNNEL.authTimeoutMs),
    maxClientConnections: withDefault(k.maxClientConnections, DEFAULT_TUNNEL.maxClientConnections),
    maxUpstreamSessions: withDefault(k.maxUpstreamSessions, DEFAULT_TUNNEL.maxUpstreamSessions),
    upstreamQueueTimeout: withDefault(k.upstreamQueueTimeout, DEFAULT_TUNNEL.upstreamQueueTimeoutMs),
  })
}

const tunnelOverrides = () => {
  const k = tunnelKeys()
  return object({
    maxMessageSize: optional(k.maxMessageSize),
    maxStatementSize: optional(k.maxStatementSize),
    authTimeout: optional(k.authTimeout),
    maxClientConnections: optional(k.maxClientConnections),
    maxUpstreamSessions: optional(k.maxUpstreamSessions),
    upstreamQueueTimeout: optional(k.upstreamQueueTimeout),
  })
}

type RawTunnel = Infer<ReturnType<typeof tunnelDefaults>>

function tunnelConfig(raw: RawTunnel, over?: Partial<RawTunnel>): TunnelConfig {
  const v = (key: keyof RawTunnel): number => over?.[key] ?? raw[key]
  return {
    maxMessageSize: v('maxMessageSize'),
    maxStatementSize: v('maxStatementSize'),
    authTimeoutMs: v('authTimeout'),
    maxClientConnections: v('maxClientConnections'),
    maxUpstreamSessions: v('maxUpstreamSessions'),
    upstreamQueueTimeoutMs: v('upstreamQueueTimeout'),
  }
}

const approvals = object({
  expiry: withDefault(duration({min: 1000}), DEFAULT_APPROVAL_EXPIRY_MS),
  windows: withDefault(boolean(), false),
  webhook: optional(httpsUrl({what: 'webhook', example: 'https://hooks.example.com/dbgate'})),
})

/** The keys of a target, for telling a dedented one from a target's name (parse.ts). Same as target() below. */
export const TARGET_KEYS = ['host', 'port', 'database', 'user', 'password', 'tls', 'tlsCa', 'connectTimeout', 'allow', 'reviewers', 'policy', 'rules', 'masking', 'approvals', 'mcp', 'tunnel'] as const
const mcp = object({
  mode: withDefault(oneOf(MCP_MODES), DEFAULT_MCP.mode),
  maxRows: withDefault(integer({min: 1, max: 100_000}), DEFAULT_MCP.maxRows),
  maxBytes: withDefault(size({min: 1024, max: 64 * 1024 ** 2}), DEFAULT_MCP.maxBytes),
  timeout: withDefault(duration({min: 1000}), DEFAULT_MCP.timeoutMs),
  approvalWait: withDefault(duration({min: 0, max: 60_000}), DEFAULT_MCP.approvalWaitMs),
})

function target(opts: SchemaOptions) {
  return object(
    {
      host: required(string({pattern: /^\S+$/, expected: 'a host name or IP address'}), 'db.internal'),
      port: withDefault(integer({min: 1, max: 65535}), DEFAULT_PORT),
      database: required(string(), 'app'),
      user: required(string(), 'app_rw'),
      password: optional(password(opts.baseDir)),
      tls: withDefault(oneOf(TLS_MODES), 'prefer'),
      tlsCa: optional(path(opts.baseDir, '/etc/ssl/db-ca.pem')),
      connectTimeout: withDefault(duration({min: 1000, max: 10 * 60_000}), DEFAULT_CONNECT_TIMEOUT_MS),
      allow: optional(groups),
      reviewers: withDefault(groups, []),
      policy: withDefault(oneOf(POLICY_PACKS), 'default'),
      rules: withDefault(list(rule, {uniqueKey: {key: 'id', what: 'rule id'}}), []),
      masking: optional(masking()),
      approvals: optional(approvals),
      tunnel: optional(tunnelOverrides()),
      mcp: optional(mcp),
    },
    {
      check(t, _at, cx) {
        if (t.password !== undefined && 'rdsIam' in t.password && t.tls !== 'require' && t.tls !== 'verify-full') {
          // Located at `tls` when it is written, else at the target (its default, prefer, applies).
          const {node, path} = cx.locate(t, 'tls')
          cx.error(
            'insecure',
            node,
            path,
            `RDS IAM authentication (password: {rdsIam: …}) needs TLS to the database, and RDS refuses IAM tokens without it; tls is ${t.tls}`,
            'set "tls: verify-full" with "tlsCa:" the RDS certificate bundle (or at least "tls: require")',
          )
        }
        if (t.tlsCa !== undefined && (t.tls === 'disable' || t.tls === 'prefer')) {
          const {node, path} = cx.locate(t, 'tlsCa')
          cx.report('warning', 'ineffective', node, path, `tlsCa has no effect with tls: ${t.tls}; the server certificate is not verified`, 'set "tls: verify-full" (or require), or remove tlsCa')
        }
      },
    },
  )
}

type RawTarget = Infer<ReturnType<typeof target>>

function buildTarget(name: string, t: RawTarget, tunnel: RawTunnel, cx: Context): TargetConfig | Invalid {
  const rules: RuleConfig[] = []
  const seen = new Map<string, number>()
  let ok = true
  t.rules.forEach((r, i) => {
    const id = r.id ?? `${name}.rules[${i}]`
    const {node} = cx.locate(r)
    const position = cx.position(node)
    const first = seen.get(id)
    // Explicit duplicates were reported by the list itself; this catches an explicit id equal to
    // another rule's default one.
    if (first !== undefined) {
      ok = false
      const idAt = cx.locate(r, 'id')
      cx.error('duplicate', idAt.node, idAt.path, `duplicate rule id "${id}" in targets.${name}.rules (first used at line ${first})`, `give each item of targets.${name}.rules a different id`)
    } else {
      seen.set(id, position.line)
    }
    const match: RuleConfig['match'] = {}
    for (const key of ['class', 'command', 'tables', 'functions', 'groups', 'where', 'client'] as const) {
      if (r.match[key] !== undefined) (match as Record<string, unknown>)[key] = r.match[key]
    }
    rules.push({id, match, action: r.action, ...(r.reason !== undefined ? {reason: r.reason} : {}), source: {file: cx.file, ...position}})
  })
  if (!ok) return INVALID
  const masking = t.masking ?? {unmask: [], mask: [], unmaskColumns: [], strategies: {}, onUntraceable: 'mask' as const}
  const approvals = t.approvals ?? {expiry: DEFAULT_APPROVAL_EXPIRY_MS, windows: false, webhook: undefined}
  return {
    name,
    host: t.host,
    port: t.port,
    database: t.database,
    user: t.user,
    ...(t.password && 'rdsIam' in t.password ? {rdsIam: t.password.rdsIam} : t.password ? {password: t.password} : {}),
    tls: t.tls,
    ...(t.tlsCa !== undefined ? {tlsCa: t.tlsCa} : {}),
    connectTimeoutMs: t.connectTimeout,
    ...(t.allow !== undefined ? {allow: t.allow} : {}),
    reviewers: t.reviewers,
    policy: t.policy,
    rules,
    masking,
    approvals: {expiryMs: approvals.expiry, windows: approvals.windows, ...(approvals.webhook !== undefined ? {webhook: approvals.webhook} : {})},
    ...(t.mcp ? {mcp: {mode: t.mcp.mode, maxRows: t.mcp.maxRows, maxBytes: t.mcp.maxBytes, timeoutMs: t.mcp.timeout, approvalWaitMs: t.mcp.approvalWait}} : {}),
    tunnel: tunnelConfig(tunnel, t.tunnel),
  }
}

export const DEFAULT_MAX_SESSION_DURATION_MS = 12 * 3600_000
export const DEFAULT_PIPELINE_IDLE_MS = 30_000
export const DEFAULT_GATEWAY_PORT = 6432

/** `host:port`, for a listener; IPv6 in brackets. */
function hostPort(example: string): Schema<{host: string; port: number}> {
  const expected = `host:port such as ${example}`
  return scalar(expected, (v, node, at, cx) => {
    if (typeof v !== 'string') return undefined
    const m = /^(?:\[([^\]]+)\]|([^:\s]+)):(\d{1,5})$/.exec(v)
    const port = m ? Number(m[3]) : NaN
    if (!m || port > 65535) return cx.error('format', node, at.path, `expected ${expected}, got ${JSON.stringify(v)}`, `write the address and port, e.g. ${example} (0.0.0.0 listens on every interface)`)
    return {host: (m[1] ?? m[2])!, port}
  })
}

export const DEFAULT_OPS_LISTEN = {host: '127.0.0.1', port: 9187}
export const DEFAULT_DRAIN_TIMEOUT_MS = 30_000

/** `server.ops`: host:port, or `off` for no ops endpoint. */
function opsAddress(): Schema<{host: string; port: number} | null> {
  const address = hostPort('127.0.0.1:9187')
  return {
    expected: `${address.expected}, or off`,
    parse(raw, at, cx) {
      const node = cx.resolve(raw, at)
      if (node && isScalar(node) && (node.value === 'off' || node.value === false)) return null
      return address.parse(raw, at, cx)
    },
  }
}

function server(opts: SchemaOptions): Schema<GatewayServerConfig> {
  return map(
    object({
      name: optional(string({pattern: /^[\w.@-]+$/, expected: 'a name of letters, digits, ".", "_", "@" or "-"'})),
      listen: withDefault(hostPort('0.0.0.0:6432'), {host: '0.0.0.0', port: DEFAULT_GATEWAY_PORT}),
      tls: required(object({cert: required(path(opts.baseDir, '/etc/dbgate/tls.crt'), '/etc/dbgate/tls.crt'), key: required(path(opts.baseDir, '/etc/dbgate/tls.key'), '/etc/dbgate/tls.key')}), '{cert: /etc/dbgate/tls.crt, key: /etc/dbgate/tls.key}'),
      api: optional(hostPort('0.0.0.0:8443')),
      signingKey: optional(secretRef(opts.baseDir)),
      stateDir: optional(path(opts.baseDir, '/var/lib/dbgate')),
      maxSessionDuration: withDefault(duration({min: 1000}), DEFAULT_MAX_SESSION_DURATION_MS),
      sessionOutlivesToken: withDefault(boolean(), false),
      pipelineIdle: withDefault(duration({min: 0, max: 3600_000}), DEFAULT_PIPELINE_IDLE_MS),
      mcp: optional(
        object({
          publicUrl: required(string({pattern: /^https:\/\/[^/\s?#]+$/, expected: 'the https:// origin agents reach the API at, such as https://gw.example.com:8443 (no path)'}), 'https://gw.example.com:8443'),
          allowedOrigins: withDefault(list(string({pattern: /^https?:\/\/[^/\s]+$/, expected: 'a browser origin such as https://app.example.com'})), []),
          maxSessions: withDefault(integer({min: 1, max: 100_000}), 200),
        }),
      ),
      ops: withDefault(opsAddress(), DEFAULT_OPS_LISTEN),
      drainTimeout: withDefault(duration({min: 0, max: 24 * 3600_000}), DEFAULT_DRAIN_TIMEOUT_MS),
      log: withDefault(object({level: withDefault(oneOf(['debug', 'info', 'warn', 'error'] as const), 'info')}), {level: 'info' as const}),
    }),
    (v, at, cx, node) => {
      if (v.mcp && !v.api) return cx.error('missing-key', isMap(node) ? (node.get('mcp', true) as Node) : node, [...at.path, 'mcp'], 'server.mcp serves agents on the HTTPS API listener, but server.api is not set', 'add server.api: 0.0.0.0:8443 (and make server.mcp.publicUrl the address agents reach it at)')
      return {
      name: v.name ?? hostname(),
      listen: v.listen,
      tls: v.tls,
      ...(v.api ? {api: v.api} : {}),
      ...(v.signingKey ? {signingKey: v.signingKey} : {}),
      ...(v.stateDir ? {stateDir: v.stateDir} : {}),
      maxSessionDurationMs: v.maxSessionDuration,
      sessionOutlivesToken: v.sessionOutlivesToken,
      pipelineIdleMs: v.pipelineIdle,
      ops: v.ops,
      drainTimeoutMs: v.drainTimeout,
      logLevel: v.log.level,
      ...(v.mcp ? {mcp: v.mcp} : {}),
    }
    },
  )
}

export const DEFAULT_GATEWAY_API_PORT = 8443

function gatewayClient(opts: SchemaOptions): Schema<GatewayClientConfig> {
  return map(
    object({
      address: required(hostPort('gw.internal:6432'), 'gw.internal:6432'),
      ca: optional(path(opts.baseDir, '/etc/dbgate/gateway-ca.pem')),
      api: optional(hostPort('gw.internal:8443')),
    }),
    (v) => ({address: v.address, ...(v.ca ? {ca: v.ca} : {}), api: v.api ?? {host: v.address.host, port: DEFAULT_GATEWAY_API_PORT}}),
  )
}

/** The whole file. */
export function dbgateSchema(opts: SchemaOptions): Schema<DbgateConfig> {
  const targetSchema = target(opts)
  const root = object({
    server: optional(server(opts)),
    identity: optional(identity(opts)),
    bucket: optional(bucket()),
    recording: withDefault(
      object({
        previewRows: withDefault(integer({min: 0}), DEFAULT_PREVIEW_ROWS),
        // Key ids or gateway names (src/audit/trust.ts); absent: every published key may sign.
        trustedSigners: optional(
          list(string({pattern: /^\S+$/, expected: 'a key id (32 hex digits) or a gateway name', fix: 'write the key id from keys/<key-id>.json, or the name of a gateway'}), {min: 1}),
        ),
      }),
      {previewRows: DEFAULT_PREVIEW_ROWS, trustedSigners: undefined},
    ),
    tunnel: withDefault(tunnelDefaults(), {
      maxMessageSize: DEFAULT_TUNNEL.maxMessageSize,
      maxStatementSize: DEFAULT_TUNNEL.maxStatementSize,
      authTimeout: DEFAULT_TUNNEL.authTimeoutMs,
      maxClientConnections: DEFAULT_TUNNEL.maxClientConnections,
      maxUpstreamSessions: DEFAULT_TUNNEL.maxUpstreamSessions,
      upstreamQueueTimeout: DEFAULT_TUNNEL.upstreamQueueTimeoutMs,
    }),
    gateway: optional(gatewayClient(opts)),
    targets: optional(record(targetSchema, {pattern: TARGET_NAME, nameRule: 'letters, digits, "_" and "-", starting with a letter or digit', min: 1, exampleKey: 'prod'})),
  }, {
    check(v, at, cx) {
      // Targets are required, except of a gateway's client: the gateway holds them (and their credentials).
      if (v.targets === undefined && v.gateway === undefined) {
        const {node} = cx.locate(v)
        cx.error('missing-key', node, [...at.path, 'targets'], 'missing required key "targets" in the top level', 'add "targets: {prod: {host: …, database: …, user: …}}"')
      }
      if (v.targets !== undefined && v.gateway !== undefined) {
        const {node, path} = cx.locate(v, 'targets')
        cx.error('impossible-rule', node, path, 'a configuration that names a gateway has no targets of its own: the gateway holds them and their credentials', 'remove targets (run `dbgate targets` to see the gateway\'s), or remove gateway to connect directly')
      }
    },
  })
  return map(root, (raw, _at, cx) => {
    const targets = Object.create(null) as Record<string, TargetConfig>
    let ok = true
    for (const [name, t] of raw.targets ?? []) {
      const built = buildTarget(name, t, raw.tunnel, cx)
      if (built === INVALID) ok = false
      else targets[name] = built
    }
    if (!ok) return INVALID
    return {
      ...(raw.server ? {server: raw.server} : {}),
      ...(raw.gateway ? {gateway: raw.gateway} : {}),
      ...(raw.identity ? {identity: raw.identity} : {}),
      bucket: raw.bucket ?? {url: opts.defaultBucketUrl},
      recording: {previewRows: raw.recording.previewRows, ...(raw.recording.trustedSigners ? {trustedSigners: raw.recording.trustedSigners} : {})},
      tunnel: tunnelConfig(raw.tunnel),
      targets,
    }
  })
}
