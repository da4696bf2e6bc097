/**
 * The vocabulary of the guardrail core: what the analyser says about SQL, the rules people write
 * about it, and the decisions that come out. Everything here is plain data so analyses can be
 * cached, logged and compared.
 */

export const STATEMENT_CLASSES = ['read', 'write', 'ddl', 'privilege', 'admin', 'transaction', 'session', 'opaque', 'unknown'] as const
export type StatementClass = (typeof STATEMENT_CLASSES)[number]

/**
 * How a session reaches the tunnel: `connect` for a person's (or a job's) own client through
 * `dbgate connect`, `mcp` for an AI agent through `dbgate mcp`. Rules can match on it.
 */
export const CLIENT_KINDS = ['connect', 'mcp'] as const
export type ClientKind = (typeof CLIENT_KINDS)[number]

export const POLICY_ACTIONS = ['allow', 'deny', 'require_approval', 'warn'] as const
export type PolicyAction = (typeof POLICY_ACTIONS)[number]

/** What a rule's `match.where` may ask for. */
export type WhereMatch = 'none' | 'trivial'

/**
 * How an UPDATE or DELETE (or a MERGE action) picks its rows: `none` has no WHERE at all, `trivial`
 * has one that holds for every row (`true`, `1=1`, `x OR true`, one that reads no column of the
 * target), `filtered` has a real row filter (or one that is constantly false).
 */
export type WhereKind = 'none' | 'trivial' | 'filtered'

export type AccessKind = 'read' | 'write' | 'ddl'

export interface TableRef {
  /** As written; absent when the SQL did not qualify the name. */
  schema?: string
  name: string
  access: AccessKind
  /** Not named by the statement: reached through a view or rule, described for errors (`the view public.v`). */
  via?: string
  /** Why this reference counts as reading every table for `tables:` rules (a statistics view, views nested too deep). */
  every?: string
  /**
   * Every relation of the schema `schema` (`name` is `*`): the statement acts on the schema as a
   * whole (`ALTER SCHEMA hr RENAME`, `DROP SCHEMA hr CASCADE`, `GRANT … ON ALL TABLES IN SCHEMA
   * hr`), so a `tables:` rule on any relation there speaks for it (glob.ts, `schemaGlobsMatch`).
   */
  schemaWide?: true
  /**
   * Set on a relation written to whose triggers, defaults, constraints or indexes run user code
   * (src/policy/views.ts): that code may change the catalog, as a called function may.
   */
  runsCode?: true
}

/** Facts the default pack keys on that a class and a command word alone cannot carry. */
export type OperationFlag =
  | 'rule' // CREATE RULE: rewrites later statements
  | 'trigger' // CREATE TRIGGER / EVENT TRIGGER: runs code on later statements
  | 'program' // COPY ... PROGRAM: runs a shell command on the server
  | 'server_file' // reads or writes a file on the database server
  | 'process' // signals or reconfigures server processes
  | 'dynamic_sql' // runs SQL text the parser never sees
  | 'assumed_setting' // moves a setting the analysis itself depends on (lexer settings) off its assumed value
  | 'dangerous_setting' // changes what later statements mean, or loads server code
  | 'unlisted_setting' // a setting not on the reviewed allow-list
  | 'search_path' // changes how unqualified names resolve
  | 'role_change' // SET ROLE, SET SESSION AUTHORIZATION, set_config('role', ...)
  | 'unresolved' // an EXECUTE of a prepared statement dbgate has not seen
  | 'volatile_function' // calls a volatile function that is not a reviewed harmless read
  | 'every_table_code' // runs the code stored with every table of a schema or database (bare ANALYZE, REINDEX SCHEMA), unread
  | 'unknown_function' // calls a function (or operator) dbgate could not find or look up
  | 'heavy_maintenance' // VACUUM FULL, FREEZE and other options beyond the plain ones
  | 'hidden_setting' // reaches set_config by a route whose setting and value the statement does not show (a view, a rule, UPDATE pg_settings)
  | 'large_object' // removes or overwrites a large object that exists (lo_unlink, lo_truncate, lo_put, lowrite)
  | 'sequence_reset' // sets a sequence to a chosen value (setval), which can make the next inserts collide
  | 'changes_catalog' // calls a function whose body may change the catalog (DDL, dynamic SQL, a body dbgate cannot read): the calls after it may run what dbgate has not read
  | 'unsettled_catalog' // a call made after the session's own uncommitted change to the catalog, which the tunnel cannot read yet
  | 'shadows_builtin_type' // puts a type or relation named like a built-in type into the session's temporary schema, where type names are looked up first

/**
 * Something a statement calls that the catalog decides: a function (or aggregate, procedure), a
 * function reached by attribute notation (`u.fullname` is `fullname(u)`), an operator (which runs
 * its function), or a cast to a type that is not built in (cast functions, domain checks).
 */
export interface CatalogCall {
  /**
   * `trigger`: a write to the relation `name`, which fires its triggers (and those of the tables
   * behind it): their bodies' statements are judged as the statement's own (catalog.ts).
   */
  kind: 'function' | 'attribute' | 'operator' | 'cast' | 'relation' | 'trigger'
  /** As written; absent when unqualified (then every visible candidate counts). */
  schema?: string
  /** Function or type name as PostgreSQL stores it; the operator's symbol. */
  name: string
  /** Arguments given (1 for attribute notation and casts, 1 or 2 for operators, 0 for a relation, whose views and rules may call functions). */
  args: number
  /**
   * A direct `set_config(...)` call that the walker also judges as the setting it changes. Any other
   * route to pg_catalog.set_config (a view, a rule) hides the setting, and is refused.
   */
  judgedAsSetting?: true
  /**
   * A direct call of a built-in that converts into a type its arguments choose
   * (`pg_input_is_valid(v, 'schema.type')`, `json_populate_record(null::t, …)`) whose type the
   * walker read and recorded as a cast call of its own, which judges what the conversion runs.
   */
  judgedAsCast?: true
  /**
   * Of a `trigger` call: only the relation's partition keys and their operator classes, not the
   * rest of what a write runs (CREATE TABLE … PARTITION OF checks the default partition's rows
   * against the new bound, evaluating the parent's key and nothing else).
   */
  partitionKeyOnly?: true
}

export interface SettingChange {
  /** Lower-cased setting name. */
  name: string
  /** Constant value as text; absent for RESET / DEFAULT, or when not a constant. */
  value?: string
  /** RESET, RESET ALL, SET ... TO DEFAULT: back to the session's starting value. */
  reset: boolean
  /** The value is an expression dbgate cannot evaluate. */
  dynamic: boolean
}

/**
 * One thing a statement does. A statement may do several: `WITH d AS (DELETE ...) SELECT ...` reads
 * and deletes, `SELECT pg_terminate_backend(pid)` reads and signals a process. Rules judge every
 * operation; the statement gets the strictest result.
 */
export interface Operation {
  class: StatementClass
  /** Lower-case command word: select, insert, delete, create_table, drop, set, function, ... */
  command: string
  /** Object kind for DDL and privilege commands: table, schema, database, index, role, ... */
  object?: string
  /** For update and delete (including MERGE actions). */
  where?: WhereKind
  /**
   * Set while a `filtered` WHERE leans on relations or user code taken to hold other rows than the
   * target's: the calls it reads (relations, functions, operators, casts) and the judgment made as
   * if they held the target's own rows; and the operator symbols the condition names without a
   * schema, which a user's operator of the same symbol may take over, the names it reads as `t.x`,
   * which a user's function may answer (attribute notation), and the judgment made as if they all
   * were a user's code. The target's catalog settles which holds (where-basis.ts).
   */
  whereBasis?: {calls: CatalogCall[]; otherwise: WhereKind; operators: string[]; attributes: string[]; userCodeOtherwise: WhereKind}
  tables: TableRef[]
  /** Functions called, schema-qualified where written, e.g. `pg_catalog.pg_read_file`. */
  functions: string[]
  flags: OperationFlag[]
  /**
   * What the catalog must judge (see `resolveCatalogCalls`): absent once resolved, and on
   * operations that call nothing.
   */
  calls?: CatalogCall[]
  setting?: SettingChange
  /** Name of the prepared statement an EXECUTE runs, until resolved against a registry. */
  executes?: string
  /**
   * The cursor a DECLARE makes, a FETCH or MOVE runs, or a CLOSE closes, as the server names it
   * (folded unless quoted); absent on CLOSE ALL.
   */
  cursor?: string
  /** Why the operation is `unknown`, or other context a reviewer needs. */
  detail?: string
  /**
   * DDL that leaves every existing relation as it was (relation-keeping.ts): the relations named
   * after it, before its COMMIT, are still what the committed catalog says.
   */
  keepsRelations?: true
}

export interface StatementAnalysis {
  /** 0-based position in the text. */
  index: number
  /** The statement's own text, cut from the original. */
  text: string
  /** Summary: the operation that matters most (see `primaryOperation`). */
  class: StatementClass
  command: string
  where?: WhereKind
  /** Every table and function of every operation, deduplicated. */
  tables: TableRef[]
  functions: string[]
  operations: Operation[]
  /** SQL `PREPARE name AS ...`: the inner statement's operations are this statement's operations. */
  prepare?: {name: string}
  /** SQL `DEALLOCATE name` / `DEALLOCATE ALL` / `DISCARD ALL`. */
  deallocate?: {name?: string; all: boolean}
  /** Set when the statement could not be parsed or judged. */
  error?: string
  /** The parser's own syntax error, as PostgreSQL would report it. */
  syntaxError?: SyntaxErrorInfo
}

export interface SyntaxErrorInfo {
  /** The parser's message, e.g. `syntax error at or near "SELEC"`. */
  message: string
  /** 1-based position in characters of the whole text, as ErrorResponse's `P` field counts it. */
  position: number
}

export interface Analysis {
  sql: string
  statements: StatementAnalysis[]
}

export interface AnalyzeOptions {
  /** Texts longer than this many UTF-8 bytes are not parsed and come back `unknown`. */
  maxStatementSize?: number
  /**
   * Names that are a PL/pgSQL function's variables where the text is one of its embedded queries:
   * references to them are parameters to the server, and are judged as such (plpgsql-variables.ts).
   */
  variables?: ReadonlySet<string>
  /** Those of `variables` that are records wherever they are in scope: `r.id` is a field of r only then. */
  records?: ReadonlySet<string>
}

/**
 * A rule as `dbgate.yaml` writes it, after the config loader has validated it (it fills `id`).
 * `class` and `command` take one value or a list; the loader passes lists.
 */
export interface PolicyRule {
  id: string
  match: {
    class?: StatementClass | readonly StatementClass[]
    command?: string | readonly string[]
    /** Globs over `schema.table`; `*` stays within one name part. */
    tables?: readonly string[]
    functions?: readonly string[]
    /** The rule applies only to identities in one of these groups. */
    groups?: readonly string[]
    where?: WhereMatch
    /** Globs over setting names (`SET`, `RESET`, `set_config`, startup parameters). */
    settings?: readonly string[]
    /** The rule applies only to sessions of these clients (`mcp`: AI agents). */
    client?: ClientKind | readonly ClientKind[]
  }
  action: PolicyAction
  reason?: string
}

/** Which built-in pack runs after a target's own rules. */
export type PolicyPackName = 'default' | 'none'

/** A built-in rule: code rather than data, because it keys on facts the YAML language does not expose. */
export interface BuiltinRule {
  id: string
  action: PolicyAction
  reason: string
  /** A hint, or one made for the operation (naming the function or setting a rule would allow). */
  hint?: string | ((op: Operation) => string)
  test(op: Operation): boolean
}

/** The outcome for one statement: which rule decided it, and why. */
export interface RuleDecision {
  action: PolicyAction
  ruleId: string
  reason: string
  hint?: string
  /** What the analyser noticed about the operation (a parse error, the setting's danger, ...). */
  detail?: string
  statementIndex: number
  /** Which operation of the statement the rule judged. */
  operationIndex: number
  command: string
  class: StatementClass
}

export interface Decision {
  /** The strictest of the statements' actions (deny > require_approval > warn > allow). */
  action: PolicyAction
  /** The statement decision that set `action` (the first one, if several tie). */
  decisive?: RuleDecision
  /** One per statement, in order. */
  statements: RuleDecision[]
  /** Every warn decision, so each can become a notice. */
  warnings: RuleDecision[]
  /**
   * Every operation that needs a reviewer, each with the rule that holds it (a statement's own
   * decision names only its primary operation's rule when several need one): what an approval
   * window must cover whole, and what the reviewer is told.
   */
  holds?: RuleDecision[]
  /** Set when the text does not parse: it is answered as the server would answer it, never judged or sent. */
  syntaxError?: SyntaxErrorInfo
}
