/**
 * The validated configuration, as the rest of dbgate sees it: every default applied, durations in
 * milliseconds, sizes in bytes, relative paths made absolute. Nothing here holds a secret value
 * except an inline password, which is kept out of JSON and inspection (see `SecretRef`).
 */
import type {z} from 'zod'
import type {dbgateSchema} from './schema.js'

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

/**
 * The sections of dbgate.yaml as dbgate runs them, inferred from the schema (schema.ts), so type
 * and check cannot drift; the names below are what the rest of dbgate imports.
 */
export type DbgateConfig = z.output<ReturnType<typeof dbgateSchema>>
export type TargetConfig = DbgateConfig['targets'][string]
export type IdentityConfig = NonNullable<DbgateConfig['identity']>
/** Structurally what `src/bucket` accepts; `url` is `file:///abs/path` or `s3://bucket/prefix`. */
export type BucketConfig = DbgateConfig['bucket']
export type RecordingConfig = DbgateConfig['recording']
export type TunnelConfig = DbgateConfig['tunnel']
export type RuleConfig = TargetConfig['rules'][number]
export type RuleMatch = RuleConfig['match']
export type MaskingConfig = TargetConfig['masking']
export type ApprovalsConfig = TargetConfig['approvals']
/** `targets.<name>.mcp`; absent means the defaults (`DEFAULT_MCP`: read-only). */
export type McpConfig = NonNullable<TargetConfig['mcp']>
export type RdsIamConfig = NonNullable<TargetConfig['rdsIam']>
export type GatewayServerConfig = NonNullable<DbgateConfig['server']>
export type GatewayMcpConfig = NonNullable<GatewayServerConfig['mcp']>
export type GatewayClientConfig = NonNullable<DbgateConfig['gateway']>

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

/** Where a configuration came from: `--config`, `DBGATE_CONFIG`, `./dbgate.yaml`, or the user's own file. */
export type ConfigSource = 'flag' | 'env' | 'cwd' | 'user'

export interface LoadedConfig {
  /** Absolute path of the file that was loaded. */
  path: string
  /**
   * How it was found. Only `cwd` (found, not named) needs the person's trust before their sign-in
   * goes where it says (src/config/trust.ts); absent means named by the caller.
   */
  source?: ConfigSource
  /**
   * The file was named (`--config`, `DBGATE_CONFIG`) by another program's configuration that
   * launched dbgate, not by the person at a prompt: `dbgate mcp`, started by an agent from an MCP
   * configuration a repository can carry (`.mcp.json`). It needs the person's trust as a
   * `./dbgate.yaml` does, unless it is their own config.yaml.
   */
  namedByLauncher?: boolean
  /** SHA-256 (hex) of exactly the text that was parsed, to match against a recorded trust. */
  sha256?: string
  config: DbgateConfig
  warnings: ConfigIssue[]
}
