/**
 * What calling a function does, by allow-list. A function is a read only when the server's catalog
 * says it is stable or immutable, or when it is one of the volatile built-ins reviewed below as
 * harmless reads. Built-ins with effects the statement does not show have explicit classes; every
 * other volatile function, built-in or user-defined, counts as a write that needs a reviewer.
 *
 * Built-in volatility comes from builtins.generated.ts (generated from the server's own catalog by
 * `npm run gen:builtins`); user-defined functions are looked up in the target's catalog
 * (catalog.ts).
 */
import type {OperationFlag, StatementClass} from './types.js'
import type {Volatility} from './builtins.js'

/** One function a call may resolve to: an overload in some schema. */
export interface FunctionCandidate {
  schema: string
  name: string
  /** Argument types as text, where known (`tsquery,text`). */
  args?: string
  volatility: Volatility
  /** pg_proc.prokind: f function, a aggregate, w window, p procedure. */
  kind: string
  nargs: number
  ndefaults: number
  variadic: boolean
  /** For a function reached through something else: `operator public.===`, `aggregate public.total`, `cast to public.email`. */
  via?: string
  /** The schema of that something else (what a qualified call names), when it is not the function's own. */
  scope?: string
  /** pg_proc.oid, for a function read from the target's catalog: its body is judged by it (catalog.ts). */
  oid?: number
}

/** Effects, least to most serious; a call is judged by its worst candidate. */
export const EFFECT_RANK = {read: 0, session: 1, data_write: 2, destroy: 3, maintenance: 4, volatile: 5, unknown: 6, denied: 7} as const
export type EffectKind = keyof typeof EFFECT_RANK

export interface FunctionEffect {
  kind: EffectKind
  class: StatementClass
  flag?: OperationFlag
  /** What it does, in a few words, for the error a client sees. */
  what: string
  /**
   * Set when the body may change the catalog (DDL, dynamic SQL, a body dbgate cannot read), even
   * when the verdict is the declared volatility: the calls after it are judged as after DDL.
   */
  changesCatalog?: true
  /** For an effect found in a function's body: the functions it was reached through, outermost first, down to the one that does it. */
  through?: string[]
}

const READ: FunctionEffect = {kind: 'read', class: 'read', what: 'reads'}

/**
 * Run SQL given as text (or build queries from names given as text): no analysis sees what they
 * run, so they are denied by default. Core PostgreSQL: the SQL/XML export family (xml.c), and
 * full-text search's ts_stat and ts_rewrite(tsquery, text) (tsvector_op.c, tsquery_rewrite.c),
 * which run the query text they are given through SPI.
 */
const DYNAMIC_SQL = [
  'query_to_xml',
  'query_to_xmlschema',
  'query_to_xml_and_xmlschema',
  'cursor_to_xml',
  'cursor_to_xmlschema',
  'table_to_xml',
  'table_to_xmlschema',
  'table_to_xml_and_xmlschema',
  'schema_to_xml',
  'schema_to_xmlschema',
  'schema_to_xml_and_xmlschema',
  'database_to_xml',
  'database_to_xmlschema',
  'database_to_xml_and_xmlschema',
  'ts_stat',
  'ts_rewrite(tsquery,text)',
]

/** Read or write files on the database server. */
const SERVER_FILE = [
  'pg_read_file',
  'pg_read_binary_file',
  'pg_stat_file',
  'pg_ls_dir',
  'pg_ls_logdir',
  'pg_ls_waldir',
  'pg_ls_tmpdir',
  'pg_ls_archive_statusdir',
  'pg_ls_logicalsnapdir',
  'pg_ls_logicalmapdir',
  'pg_ls_replslotdir',
  'pg_ls_summariesdir',
  'pg_show_all_file_settings',
  'pg_hba_file_rules',
  'pg_ident_file_mappings',
  'lo_import',
  'lo_export',
]

/** Signal, reconfigure or steer server processes, replication and statistics. */
const PROCESS = [
  'pg_terminate_backend',
  'pg_cancel_backend',
  'pg_reload_conf',
  'pg_rotate_logfile',
  'pg_promote',
  'pg_switch_wal',
  'pg_create_restore_point',
  'pg_backup_start',
  'pg_backup_stop',
  'pg_wal_replay_pause',
  'pg_wal_replay_resume',
  'pg_log_backend_memory_contexts',
  'pg_log_standby_snapshot',
  'pg_create_physical_replication_slot',
  'pg_create_logical_replication_slot',
  'pg_drop_replication_slot',
  'pg_copy_physical_replication_slot',
  'pg_copy_logical_replication_slot',
  'pg_replication_slot_advance',
  'pg_sync_replication_slots',
  'pg_logical_slot_get_changes',
  'pg_logical_slot_get_binary_changes',
  'pg_logical_slot_peek_changes',
  'pg_logical_slot_peek_binary_changes',
  'pg_logical_emit_message',
  'pg_replication_origin_create',
  'pg_replication_origin_drop',
  'pg_replication_origin_advance',
  'pg_replication_origin_session_setup',
  'pg_replication_origin_session_reset',
  'pg_replication_origin_xact_setup',
  'pg_replication_origin_xact_reset',
  'pg_stat_reset',
  'pg_stat_reset_shared',
  'pg_stat_reset_single_table_counters',
  'pg_stat_reset_single_function_counters',
  'pg_stat_reset_slru',
  'pg_stat_reset_replication_slot',
  'pg_stat_reset_subscription_stats',
  'pg_stat_reset_backend_stats',
  'pg_nextoid',
  'pg_stop_making_pinned_objects',
]

/** Add data outside any table the statement names: new large objects, sequence values. Writes, allowed like inserts. */
const DATA_WRITE = ['lo_creat', 'lo_create', 'lo_from_bytea', 'nextval']

/**
 * Set a sequence to a value of the caller's choosing. Moved back, the application's next inserts
 * collide with rows that exist, until someone sets it right; a call runs once per row, so
 * `select setval(c.oid, 1) from pg_class c where c.relkind = 'S'` resets every sequence. A
 * reviewer approves it, like the other overwrites the policy cannot bound.
 */
const SEQUENCE_RESET = ['setval']

/**
 * Remove or overwrite a large object that exists. A call runs once per row of whatever it is
 * called over, and no WHERE the policy reads bounds which objects that reaches: one statement
 * (`select lo_unlink(oid) from pg_largeobject_metadata`) empties the database of them. Writes that
 * a reviewer approves, like the other destruction the policy cannot bound.
 */
const LARGE_OBJECT_DESTROY = ['lo_unlink', 'lo_truncate', 'lo_truncate64', 'lo_put', 'lowrite']

/** Change planner statistics, index summaries or catalog contents: maintenance, which a reviewer approves. */
const MAINTENANCE = [
  'pg_restore_relation_stats',
  'pg_restore_attribute_stats',
  'pg_clear_relation_stats',
  'pg_clear_attribute_stats',
  'brin_summarize_range',
  'brin_summarize_new_values',
  'brin_desummarize_range',
  'gin_clean_pending_list',
  'pg_import_system_collations',
  'pg_extension_config_dump',
]

/**
 * Convert a value into a type that the statement's text does not show: a type name given as text
 * (`pg_input_is_valid('1', 'public.d')`), a type OID (`record_in('(1)', 'public.t'::regtype, -1)`),
 * or the type of whatever row or value the first argument is (`json_populate_record(t, …) FROM t`).
 * The conversion runs that type's domain checks (and its attributes' and elements'), which may call
 * any function. The walker judges a call whose type it can read as a cast to that type instead
 * (`CatalogCall.judgedAsCast`); any other such call is judged like a volatile function.
 */
const TYPE_CHOSEN_BY_DATA = [
  'pg_input_is_valid',
  'pg_input_error_info',
  'json_populate_record',
  'json_populate_recordset',
  'jsonb_populate_record',
  'jsonb_populate_recordset',
  'jsonb_populate_record_valid',
  'record_in',
  'array_in',
  'domain_in',
  'range_in',
  'multirange_in',
  'anyrange_in',
  'anymultirange_in',
  'anycompatiblerange_in',
  'anycompatiblemultirange_in',
]

/** Session-level effects that applications rely on: advisory locks (migration tools take them) and pg_notify (like NOTIFY). */
const SESSION = [
  'pg_advisory_lock',
  'pg_advisory_lock_shared',
  'pg_advisory_unlock',
  'pg_advisory_unlock_shared',
  'pg_advisory_unlock_all',
  'pg_advisory_xact_lock',
  'pg_advisory_xact_lock_shared',
  'pg_try_advisory_lock',
  'pg_try_advisory_lock_shared',
  'pg_try_advisory_xact_lock',
  'pg_try_advisory_xact_lock_shared',
  'pg_notify',
  // Judged as the setting it writes (a `set` operation of its own, see walker.ts), not here.
  'set_config',
]

/**
 * Volatile built-ins reviewed as harmless reads. Volatile only because their result may differ
 * between calls (randomness, the clock, the session's own state, live server statistics) — not
 * because they change anything another session or a later statement could see.
 */
const HARMLESS_VOLATILE: Record<string, string> = {
  random: 'a random number',
  random_normal: 'a random number',
  setseed: "seeds this session's random(); nothing outside the session changes",
  array_shuffle: 'a shuffled copy of its argument',
  array_sample: 'a random sample of its argument',
  gen_random_uuid: 'a random UUID',
  uuidv4: 'a random UUID',
  uuidv7: 'a time-ordered UUID',
  clock_timestamp: 'the current time',
  timeofday: 'the current time as text',
  pg_sleep: 'waits',
  pg_sleep_for: 'waits',
  pg_sleep_until: 'waits',
  currval: "the session's last value of a sequence",
  lastval: "the session's last sequence value",
  pg_sequence_last_value: "a sequence's last value",
  pg_get_sequence_data: "a sequence's state",
  lo_open: 'opens a descriptor; writing through it is lowrite, which is a write',
  lo_close: 'closes a descriptor',
  loread: 'reads a large object',
  lo_get: 'reads a large object',
  lo_lseek: 'moves a descriptor',
  lo_lseek64: 'moves a descriptor',
  lo_tell: 'reports a position',
  lo_tell64: 'reports a position',
  current_query: "the session's own query text",
  pg_current_logfile: "the current log file's name (not its contents)",
  pg_export_snapshot: "exports this transaction's snapshot for another session to share; changes nothing",
  pg_stat_clear_snapshot: "drops this session's cached statistics snapshot",
  pg_stat_force_next_flush: "asks for this session's statistics to be flushed; changes no data",
  pg_is_in_recovery: 'server status',
  pg_is_wal_replay_paused: 'server status',
  pg_get_wal_replay_pause_state: 'server status',
  pg_current_wal_lsn: 'server status',
  pg_current_wal_insert_lsn: 'server status',
  pg_current_wal_flush_lsn: 'server status',
  pg_last_wal_receive_lsn: 'server status',
  pg_last_wal_replay_lsn: 'server status',
  pg_last_xact_replay_timestamp: 'server status',
  pg_last_committed_xact: 'server status',
  pg_xact_commit_timestamp: 'server status',
  pg_xact_commit_timestamp_origin: 'server status',
  pg_xact_status: 'server status',
  txid_status: 'server status',
  pg_control_checkpoint: 'server status',
  pg_control_init: 'server status',
  pg_control_recovery: 'server status',
  pg_control_system: 'server status',
  pg_jit_available: 'server status',
  pg_notification_queue_usage: 'server status',
  pg_blocking_pids: 'lock status',
  pg_safe_snapshot_blocking_pids: 'lock status',
  pg_isolation_test_session_is_blocked: 'lock status',
  pg_lock_status: 'lock status',
  pg_prepared_xact: 'prepared transactions',
  pg_database_size: 'a size',
  pg_tablespace_size: 'a size',
  pg_relation_size: 'a size',
  pg_table_size: 'a size',
  pg_indexes_size: 'a size',
  pg_total_relation_size: 'a size',
  pg_partition_tree: 'partition structure',
  pg_partition_ancestors: 'partition structure',
  pg_collation_actual_version: 'a collation version',
  pg_database_collation_actual_version: 'a collation version',
  pg_get_backend_memory_contexts: 'memory statistics',
  pg_get_shmem_allocations: 'memory statistics',
  pg_get_shmem_allocations_numa: 'memory statistics',
  pg_get_wait_events: 'wait event names',
  pg_get_aios: 'I/O statistics',
  pg_get_loaded_modules: 'loaded libraries',
  pg_get_multixact_members: 'multixact members',
  pg_get_wal_resource_managers: 'WAL statistics',
  pg_get_wal_summarizer_state: 'WAL statistics',
  pg_available_wal_summaries: 'WAL statistics',
  pg_wal_summary_contents: 'WAL statistics',
  pg_replication_origin_progress: 'replication status',
  pg_replication_origin_session_progress: 'replication status',
  pg_replication_origin_session_is_setup: 'replication status',
  pg_show_replication_origin_status: 'replication status',
  pg_stat_have_stats: 'statistics',
  pg_stat_get_io: 'statistics',
  pg_stat_get_backend_io: 'statistics',
  pg_stat_get_backend_wal: 'statistics',
  pg_stat_get_recovery_prefetch: 'statistics',
  pg_stat_get_xact_blocks_fetched: 'statistics',
  pg_stat_get_xact_blocks_hit: 'statistics',
  pg_stat_get_xact_function_calls: 'statistics',
  pg_stat_get_xact_function_self_time: 'statistics',
  pg_stat_get_xact_function_total_time: 'statistics',
  pg_stat_get_xact_numscans: 'statistics',
  pg_stat_get_xact_tuples_deleted: 'statistics',
  pg_stat_get_xact_tuples_fetched: 'statistics',
  pg_stat_get_xact_tuples_hot_updated: 'statistics',
  pg_stat_get_xact_tuples_inserted: 'statistics',
  pg_stat_get_xact_tuples_newpage_updated: 'statistics',
  pg_stat_get_xact_tuples_returned: 'statistics',
  currtid2: 'reads a row version',
  amvalidate: 'checks an operator class',
}

/**
 * Extensions whose functions run SQL given as text, matched by name in any schema (extensions live
 * wherever they were installed): dblink, tablefunc's crosstab and connectby, xml2's xpath_table.
 * adminpack's file functions are server files.
 */
export function extensionEffect(bare: string): FunctionEffect | undefined {
  if (bare === 'dblink' || bare.startsWith('dblink_') || bare.startsWith('crosstab') || bare === 'connectby' || bare === 'xpath_table') {
    return {kind: 'denied', class: 'admin', flag: 'dynamic_sql', what: 'runs SQL given as text, which dbgate cannot see into'}
  }
  if (bare.startsWith('pg_file_') || bare === 'pg_logdir_ls') return {kind: 'denied', class: 'admin', flag: 'server_file', what: "reads or writes files on the database server's disk"}
  if (bare === 'pg_stat_statements_reset') return {kind: 'denied', class: 'admin', flag: 'process', what: 'signals or reconfigures server processes, replication or statistics'}
  return undefined
}

const BUILTIN_EFFECTS = new Map<string, FunctionEffect>([
  ...DYNAMIC_SQL.map((n) => [n, {kind: 'denied', class: 'admin', flag: 'dynamic_sql', what: 'runs SQL given as text, which dbgate cannot see into'}] as const),
  ...SERVER_FILE.map((n) => [n, {kind: 'denied', class: 'admin', flag: 'server_file', what: "reads or writes files on the database server's disk"}] as const),
  ...PROCESS.map((n) => [n, {kind: 'denied', class: 'admin', flag: 'process', what: 'signals or reconfigures server processes, replication or statistics'}] as const),
  ...DATA_WRITE.map((n) => [n, {kind: 'data_write', class: 'write', what: "creates a large object or takes a sequence's next value"}] as const),
  ...SEQUENCE_RESET.map((n) => [n, {kind: 'destroy', class: 'write', flag: 'sequence_reset', what: 'sets a sequence to a value the statement chooses (once for every row it is called over)'}] as const),
  ...LARGE_OBJECT_DESTROY.map((n) => [n, {kind: 'destroy', class: 'write', flag: 'large_object', what: 'removes or overwrites a large object (once for every row it is called over)'}] as const),
  ...MAINTENANCE.map((n) => [n, {kind: 'maintenance', class: 'admin', what: 'changes planner statistics, index summaries or the catalog'}] as const),
  ...SESSION.map((n) => [n, {kind: 'session', class: 'session', what: 'takes an advisory lock, notifies listeners or sets a setting'}] as const),
  ...TYPE_CHOSEN_BY_DATA.map(
    (n) =>
      [
        n,
        {
          kind: 'volatile',
          class: 'write',
          flag: 'volatile_function',
          what: "converts a value into a type the statement does not name (given as text or an OID, or a row's own type), running that type's domain checks, which may call any function; name the type in a cast the statement shows (`json_populate_record(null::t, …)`, `pg_input_is_valid(v, 'schema.type')` with a constant)",
        },
      ] as const,
  ),
] as [string, FunctionEffect][])

/** Whether `name` is one of the built-ins with an explicit class or a reviewed harmless read (for tests and docs). */
export function reviewedBuiltin(name: string): boolean {
  return BUILTIN_EFFECTS.has(name) || name in HARMLESS_VOLATILE || DYNAMIC_SQL.some((d) => d.startsWith(`${name}(`))
}

export const TYPE_CHOSEN_BY_DATA_BUILTINS: ReadonlySet<string> = new Set(TYPE_CHOSEN_BY_DATA)
export const HARMLESS_VOLATILE_BUILTINS: Readonly<Record<string, string>> = HARMLESS_VOLATILE
export const DYNAMIC_SQL_BUILTINS: readonly string[] = DYNAMIC_SQL

export function isBuiltinSchema(schema: string): boolean {
  return schema === 'pg_catalog' || schema === 'information_schema'
}

/** What calling `c` does. */
export function candidateEffect(c: FunctionCandidate): FunctionEffect {
  const bare = c.name.toLowerCase()
  const ext = extensionEffect(bare)
  if (ext) return ext
  if (isBuiltinSchema(c.schema)) {
    const explicit = BUILTIN_EFFECTS.get(c.args === undefined ? bare : `${bare}(${c.args})`) ?? BUILTIN_EFFECTS.get(bare)
    if (explicit) return explicit
    if (c.volatility !== 'v' || bare in HARMLESS_VOLATILE) return READ
    return {kind: 'volatile', class: 'write', flag: 'volatile_function', what: 'is a volatile built-in that is not on the reviewed list of harmless reads, so it counts as a write'}
  }
  if (c.volatility === 'v') return {kind: 'volatile', class: 'write', flag: 'volatile_function', what: 'is volatile: it may change data, so it counts as a write'}
  return READ
}

/** Whether a call with `args` arguments could resolve to `c` (defaults and VARIADIC included). */
export function arityFits(c: Pick<FunctionCandidate, 'nargs' | 'ndefaults' | 'variadic'>, args: number): boolean {
  if (c.variadic) return args >= c.nargs - c.ndefaults - 1
  return args >= c.nargs - c.ndefaults && args <= c.nargs
}
