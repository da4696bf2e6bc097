/**
 * The validated configuration, as the rest of dbgate sees it: every default applied, durations in
 * milliseconds, sizes in bytes, relative paths made absolute. Nothing here holds a secret value
 * except an inline password, which is kept out of JSON and inspection (see `SecretRef`).
 */

/** Statement classes the policy engine assigns; `match.class` accepts these. */
export const STATEMENT_CLASSES = ['read', 'write', 'ddl', 'privilege', 'admin', 'transaction', 'session', 'opaque', 'unknown'] as const
export type StatementClass = (typeof STATEMENT_CLASSES)[number]

export const RULE_ACTIONS = ['allow', 'deny', 'require_approval', 'warn'] as const
export type RuleAction = (typeof RULE_ACTIONS)[number]

export const WHERE_KINDS = ['none', 'trivial'] as const
export type WhereKind = (typeof WHERE_KINDS)[number]

/** How a session reaches the tunnel; `match.client` accepts these (`mcp`: an AI agent). */
export const CLIENT_KINDS = ['connect', 'mcp'] as const
export type ClientKind = (typeof CLIENT_KINDS)[number]

/** What `dbgate mcp` lets an agent do on a target. */
export const MCP_MODES = ['read-only', 'read-write'] as const
export type McpMode = (typeof MCP_MODES)[number]

export const TLS_MODES = ['disable', 'prefer', 'require', 'verify-full'] as const
export type TlsMode = (typeof TLS_MODES)[number]

export const POLICY_PACKS = ['default', 'none'] as const
export type PolicyPack = (typeof POLICY_PACKS)[number]

/**
 * Sensitive-value categories that `masking.strategies` may configure. `untraceable` is the mask
 * for output columns whose origin the lineage could not follow.
 */
export const MASKING_CATEGORIES = [
  'email',
  'phone',
  'person_name',
  'address',
  'birth_date',
  'national_id',
  'card',
  'bank_account',
  'password',
  'secret',
  'token',
  'ip_address',
  'untraceable',
] as const
export type MaskingCategory = (typeof MASKING_CATEGORIES)[number]

export const MASKING_STRATEGIES = ['redact', 'partial', 'hash', 'null'] as const
export type MaskingStrategy = (typeof MASKING_STRATEGIES)[number]

export const UNTRACEABLE_ACTIONS = ['mask', 'deny'] as const
export type UntraceableAction = (typeof UNTRACEABLE_ACTIONS)[number]

export const TOKEN_KINDS = ['id_token', 'access_token'] as const
export type TokenKind = (typeof TOKEN_KINDS)[number]

export const OBJECT_LOCK_MODES = ['GOVERNANCE', 'COMPLIANCE'] as const
export type ObjectLockMode = (typeof OBJECT_LOCK_MODES)[number]

export const CONDITIONAL_WRITE_MODES = ['native', 'probe'] as const
export type ConditionalWriteMode = (typeof CONDITIONAL_WRITE_MODES)[number]

/**
 * Where a secret comes from. Only `inline` carries the value itself; its `value` property is
 * non-enumerable so that logging, `JSON.stringify` or `util.inspect` of a config never prints it.
 */
export type SecretRef =
  | {readonly kind: 'env'; readonly name: string}
  | {readonly kind: 'file'; readonly path: string}
  | {readonly kind: 'keychain'; readonly name: string}
  | {readonly kind: 'inline'; readonly value: string}

export type SecretKind = SecretRef['kind']

/** A position in a config file, kept on values that later errors need to point back to. */
export interface SourceLocation {
  file: string
  line: number
  column: number
}

export interface IdentityConfig {
  issuer: string
  clientId: string
  clientSecret?: SecretRef
  scopes: string[]
  /** Dotted path into the token's claims, e.g. `realm_access.roles`. */
  groupsClaim: string
  audience: string
  verify: TokenKind
  clockSkewMs: number
}

/** Structurally what `src/bucket` accepts; `url` is `file:///abs/path` or `s3://bucket/prefix`. */
export interface BucketConfig {
  url: string
  endpoint?: string
  region?: string
  forcePathStyle?: boolean
  objectLock?: {mode: ObjectLockMode; days: number}
  conditionalWrites?: ConditionalWriteMode
}

export interface RecordingConfig {
  previewRows: number
  /** The only keys whose signatures `sessions verify` and `report` accept: key ids or gateway names. */
  trustedSigners?: string[]
}

export interface TunnelConfig {
  maxMessageSize: number
  maxStatementSize: number
  /** Startup, authentication and the upstream login together. */
  authTimeoutMs: number
  /** Client connections at once, authenticated or not. */
  maxClientConnections: number
  /** Upstream sessions to the target at once. */
  maxUpstreamSessions: number
  /** How long a client past maxUpstreamSessions waits for a session before it is refused. */
  upstreamQueueTimeoutMs: number
}

export interface RuleMatch {
  class?: StatementClass[]
  command?: string[]
  tables?: string[]
  functions?: string[]
  groups?: string[]
  where?: WhereKind
  /** Setting names (globs) for SET, RESET, set_config() and startup parameters. */
  settings?: string[]
  client?: ClientKind[]
}

export interface RuleConfig {
  /** The configured id, or `<target>.rules[<i>]`. Unique within a target. */
  id: string
  match: RuleMatch
  action: RuleAction
  reason?: string
  /** Where the rule was written, so decisions can cite it. */
  source: SourceLocation
}

export interface MaskingConfig {
  unmask: string[]
  mask: string[]
  unmaskColumns: string[]
  strategies: Partial<Record<MaskingCategory, MaskingStrategy>>
  onUntraceable: UntraceableAction
}

/** `targets.<name>.mcp`: what an AI agent may do through `dbgate mcp`, and its result caps. */
export interface McpConfig {
  mode: McpMode
  /** Most rows a query returns to the agent (the default for its `maxRows`, and the ceiling). */
  maxRows: number
  /** Most bytes of row data a query returns to the agent. */
  maxBytes: number
  /** statement_timeout for each query, in ms (the default for its `timeoutMs`, and the ceiling). */
  timeoutMs: number
  /** How long a query waits for a reviewer before the tool answers "waiting for approval". */
  approvalWaitMs: number
}

export interface ApprovalsConfig {
  expiryMs: number
  windows: boolean
  webhook?: string
}

export interface RdsIamConfig {
  region: string
  profile?: string
}

export interface TargetConfig {
  name: string
  host: string
  port: number
  database: string
  user: string
  password?: SecretRef
  /** Set by `password: {rdsIam: …}`: the password is an AWS RDS IAM token, made for every upstream connection. */
  rdsIam?: RdsIamConfig
  tls: TlsMode
  /** Absolute path; relative paths in the file are resolved against the file's directory. */
  tlsCa?: string
  /** How long to wait for the database to accept a connection and answer its startup. */
  connectTimeoutMs: number
  /** Groups allowed to connect; undefined when the target does not restrict by group. */
  allow?: string[]
  reviewers: string[]
  policy: PolicyPack
  rules: RuleConfig[]
  masking: MaskingConfig
  approvals: ApprovalsConfig
  /** `dbgate mcp` settings; absent means the defaults (`DEFAULT_MCP`: read-only). */
  mcp?: McpConfig
  /** The top-level `tunnel` limits, with the target's own `tunnel` keys over them. */
  tunnel: TunnelConfig
}

/**
 * `server:` in a gateway's configuration (`dbgate gateway --config gateway.yaml`): where it listens,
 * its TLS material, its signing key and how long sessions may last. See docs/gateway.md.
 */
export interface GatewayServerConfig {
  /** The name the gateway's signing key is published under (default: the host name). */
  name: string
  listen: {host: string; port: number}
  tls: {cert: string; key: string}
  /** The HTTPS API (`GET /v1/targets`); same certificate. Absent: no API. */
  api?: {host: string; port: number}
  /** A PEM Ed25519 private key that signs the recordings; default: one created in `stateDir`. */
  signingKey?: SecretRef
  /** Keys, spool and caches of the gateway (default: `gateway/` in the user's data directory). */
  stateDir?: string
  maxSessionDurationMs: number
  sessionOutlivesToken: boolean
  /** How long a pipeline (catalog connection, recorder, approval poller) outlives its last session. */
  pipelineIdleMs: number
}

/**
 * `gateway:` in a client's configuration: `dbgate connect` carries each session to this gateway over
 * TLS with the person's token, and `dbgate targets` asks it which targets they may use. Such a
 * configuration has no targets, so no database credentials.
 */
export interface GatewayClientConfig {
  address: {host: string; port: number}
  /** PEM file of the CA that signed the gateway's certificate (default: the system's CAs). */
  ca?: string
  /** The gateway's HTTPS API (default: the address's host, port 8443). */
  api: {host: string; port: number}
}

export interface DbgateConfig {
  /** Present in a gateway's configuration only. */
  server?: GatewayServerConfig
  /** Present in the configuration of a client of a gateway, instead of targets. */
  gateway?: GatewayClientConfig
  identity?: IdentityConfig
  bucket: BucketConfig
  recording: RecordingConfig
  tunnel: TunnelConfig
  /** Null-prototype map, so a lookup like `targets['constructor']` cannot hit Object.prototype. */
  targets: Record<string, TargetConfig>
}

export type IssueSeverity = 'error' | 'warning'

/** What went wrong, for tests and tools that want to react to one kind of mistake. */
export type IssueKind =
  | 'syntax'
  | 'unknown-key'
  | 'missing-key'
  | 'type'
  | 'enum'
  | 'range'
  | 'format'
  | 'duplicate'
  | 'impossible-rule'
  | 'empty'
  | 'inline-secret'
  | 'ineffective'
  | 'insecure'

export interface ConfigIssue {
  severity: IssueSeverity
  kind: IssueKind
  file: string
  /** 1-based. */
  line: number
  /** 1-based. */
  column: number
  /** Dotted path to the offending key, e.g. `targets.prod.rules[2].match.where`; '' for the whole file. */
  keyPath: string
  message: string
  /** What to change to make the issue go away. */
  fix: string
}

export interface LoadedConfig {
  /** Absolute path of the file that was loaded. */
  path: string
  config: DbgateConfig
  warnings: ConfigIssue[]
}
