/**
 * Session settings by allow-list. A session may change a setting (SET, SET LOCAL, RESET,
 * set_config(), a startup parameter) when it is on the reviewed list below, or is the
 * application's own custom setting (`app.tenant_id`; a library's, `plpgsql.check_asserts`, is not
 * custom); the settings dbgate's own analysis depends on (assumed-settings.ts) only to the values
 * it assumes; settings that change what statements mean are denied; anything else needs a
 * reviewer. Every refusal names the setting and the rule that would allow it.
 *
 * RESET, RESET ALL and SET … TO DEFAULT return a setting to the value the session started with,
 * which was checked when it started (startup parameters here; the server's reported values by the
 * proxy), so they are allowed for every setting except the role switches. Refusing them would
 * also refuse DISCARD ALL, which every connection pool sends between clients.
 */
import {assumedSetting, assumedValueMatches, boolSetting} from './assumed-settings.js'
import {pathCreatesInTemp, searchPathSchemas} from './search-path.js'
import type {OperationFlag, SettingChange, StatementClass} from './types.js'

export interface SettingVerdict {
  flag: OperationFlag
  /** `privilege` for role switches; otherwise the operation stays `session`. */
  class?: StatementClass
  reason: string
}

/**
 * Settings a session may change freely. Reviewed: each changes only how this session's own
 * statements are planned, formatted, timed or logged, never which rows they touch or who runs them.
 */
const HARMLESS = new Set([
  // What drivers and ORMs send on connect (node-postgres, pgJDBC, psycopg, Npgsql, Rails, Django …).
  'application_name', // a label in pg_stat_activity
  'extra_float_digits', // float output precision
  'datestyle', // date input/output format
  'timezone', // timestamptz display and input
  'intervalstyle', // interval output format
  'bytea_output', // hex or escape output
  'client_min_messages', // which notices reach the client
  'lc_messages', // message language (superuser only on the server anyway)
  'lc_monetary', // money formatting
  'lc_numeric', // to_char number formatting
  'lc_time', // to_char date formatting
  'xmlbinary', // xml encoding of binary values
  'xmloption', // DOCUMENT/CONTENT for xml casts
  'default_text_search_config', // to_tsvector(text) without a configuration
  'timezone_abbreviations', // abbreviations accepted in timestamp input
  'array_nulls', // whether 'NULL' in array input means null (pg_dump sets it)
  'quote_all_identifiers', // quoting in ruleutils output (pg_dump sets it)
  'escape_string_warning', // only warns about backslashes; reading is unchanged
  'check_function_bodies', // validation of CREATE FUNCTION, which needs a reviewer anyway (pg_dump sets it)
  'seed', // SET SEED: random()'s seed for this session
  // Time limits on this session's own work.
  'statement_timeout',
  'lock_timeout',
  'idle_in_transaction_session_timeout',
  'idle_session_timeout',
  'transaction_timeout',
  'client_connection_check_interval',
  'tcp_keepalives_idle',
  'tcp_keepalives_interval',
  'tcp_keepalives_count',
  'tcp_user_timeout',
  // Memory and planning of this session's own queries.
  'work_mem',
  'maintenance_work_mem',
  'hash_mem_multiplier',
  'temp_buffers',
  'logical_decoding_work_mem',
  'vacuum_buffer_usage_limit',
  'effective_cache_size',
  'effective_io_concurrency',
  'maintenance_io_concurrency',
  'io_combine_limit',
  'random_page_cost',
  'seq_page_cost',
  'cpu_tuple_cost',
  'cpu_index_tuple_cost',
  'cpu_operator_cost',
  'parallel_setup_cost',
  'parallel_tuple_cost',
  'min_parallel_table_scan_size',
  'min_parallel_index_scan_size',
  'max_parallel_workers_per_gather',
  'max_parallel_maintenance_workers',
  'parallel_leader_participation',
  'debug_parallel_query',
  'from_collapse_limit',
  'join_collapse_limit',
  'cursor_tuple_fraction',
  'default_statistics_target',
  'constraint_exclusion',
  'plan_cache_mode',
  'recursive_worktable_factor',
  'geqo',
  'geqo_threshold',
  'geqo_effort',
  'geqo_pool_size',
  'geqo_generations',
  'geqo_selection_bias',
  'geqo_seed',
  'jit',
  'jit_above_cost',
  'jit_inline_above_cost',
  'jit_optimize_above_cost',
  'gin_fuzzy_search_limit',
  'gin_pending_list_limit',
  'vacuum_cost_delay',
  'vacuum_cost_limit',
  'vacuum_cost_page_hit',
  'vacuum_cost_page_miss',
  'vacuum_cost_page_dirty',
  'vacuum_freeze_min_age',
  'vacuum_freeze_table_age',
  'vacuum_multixact_freeze_min_age',
  'vacuum_multixact_freeze_table_age',
  // Transaction characteristics (SET TRANSACTION, SET SESSION CHARACTERISTICS, BEGIN options).
  'transaction_isolation',
  'transaction_read_only',
  'transaction_deferrable',
  'default_transaction_isolation',
  'default_transaction_read_only',
  'default_transaction_deferrable',
  'synchronous_commit', // durability of this session's own commits
  'commit_delay',
  'commit_siblings',
  // Where this session's new objects and temporary files go (creating objects needs a reviewer).
  'default_tablespace',
  'temp_tablespaces',
  'default_table_access_method',
  'default_toast_compression',
  // Row security off makes a query that RLS would filter fail instead; it never shows more rows.
  'row_security',
])

/** Settings whose prefix marks them as planner switches (`enable_seqscan`, `enable_hashjoin`, …). */
const HARMLESS_PREFIXES = ['enable_']

/**
 * Settings that change what statements mean, or load code into the server: denied by the default
 * pack. A target rule can allow them (see `settingHint`).
 */
const MEANING: Record<string, string> = {
  transform_null_equals: 'transform_null_equals turns `x = NULL` into `x IS NULL`, so `WHERE NULL = NULL` holds for every row',
  session_replication_role: 'session_replication_role turns off triggers and foreign-key checks',
  local_preload_libraries: 'local_preload_libraries loads server-side code',
  session_preload_libraries: 'session_preload_libraries loads server-side code',
  dynamic_library_path: 'dynamic_library_path changes where server-side code is loaded from',
  allow_system_table_mods: 'allow_system_table_mods lets DDL change the system catalogs',
  ignore_system_indexes: 'ignore_system_indexes changes how the catalogs are read',
  zero_damaged_pages: 'zero_damaged_pages destroys data on damaged pages',
  ignore_checksum_failure: 'ignore_checksum_failure reads corrupted data as good',
  lo_compat_privileges: 'lo_compat_privileges turns off permission checks on large objects',
  createrole_self_grant: 'createrole_self_grant grants roles created in this session to their creator',
  event_triggers: 'event_triggers turns event triggers (often audit or guard code) off',
  restrict_nonsystem_relation_kind: 'restrict_nonsystem_relation_kind changes which relations statements may use',
  exit_on_error: 'exit_on_error ends the session on any error',
  default_with_oids: 'default_with_oids changes how tables are created',
}

/**
 * Prefixes the server's own libraries reserve for their settings: PostgreSQL's procedural languages
 * and contrib modules, and extensions installed widely enough to be met. A name under one of them is
 * no application state but that library's setting, which changes what its code does once it is
 * loaded; a value set before it loads is taken over when it does (PL/pgSQL loads on a session's
 * first call of a PL/pgSQL function or trigger). So it is judged as a built-in setting is: allowed
 * when listed as harmless, denied when it changes what code does, held for a reviewer otherwise.
 */
const LIBRARY_PREFIXES = new Set([
  'plpgsql',
  'plperl',
  'pltcl',
  'pltclu',
  'plpython',
  'plpython3',
  'plv8',
  'pljava',
  'auto_explain',
  'pg_stat_statements',
  'pg_trgm',
  'pg_prewarm',
  'pgcrypto',
  'isn',
  'postgres_fdw',
  'auth_delay',
  'passwordcheck',
  'basic_archive',
  'basebackup_to_shell',
  'sepgsql',
  'pgaudit',
  'anon',
  'pg_hint_plan',
  'pg_stat_monitor',
  'pgsodium',
  'timescaledb',
  'citus',
  'pglogical',
  'cron',
])

/** Library settings reviewed as harmless: they change only warnings, thresholds dbgate never relies on, or labels. */
const HARMLESS_LIBRARY = new Set([
  'plpgsql.extra_warnings', // more compile-time warnings
  'plpgsql.extra_errors', // more errors: a function stops where it would have gone on
  // The % and <% operators' thresholds (fuzzy search tuning); dbgate never reads them as a filter.
  'pg_trgm.similarity_threshold',
  'pg_trgm.word_similarity_threshold',
  'pg_trgm.strict_word_similarity_threshold',
  'postgres_fdw.application_name', // a label on the remote server
])

/**
 * Library settings allowed only at the values that keep the database's code doing what dbgate
 * judged: `ok` says whether a value (as the client wrote it) is one of them.
 */
const SAFE_VALUES: Record<string, {ok: (value: string) => boolean; reason: string}> = {
  'plpgsql.check_asserts': {
    ok: (v) => boolSetting(v) === true,
    reason: "plpgsql.check_asserts off skips every ASSERT in PL/pgSQL functions and triggers, so the checks the database's code makes with them (ASSERT new.balance >= 0) stop running",
  },
  'plpgsql.variable_conflict': {
    ok: (v) => ['error', 'use_variable'].includes(v.trim().toLowerCase()),
    reason:
      "plpgsql.variable_conflict use_column makes a table's columns win over PL/pgSQL variables of the same name, so a trigger's `WHERE accounts.id = id` compares the column with itself and matches every row, where dbgate read the variable",
  },
}

/** Library settings denied: they change what code does or run code of their own. */
const LIBRARY_MEANING: Record<string, string> = {
  'plperl.on_init': 'plperl.on_init runs Perl code when PL/Perl starts',
  'plperl.on_plperl_init': 'plperl.on_plperl_init runs Perl code when PL/Perl starts',
  'plperl.on_plperlu_init': 'plperl.on_plperlu_init runs Perl code when PL/PerlU starts',
  'pltcl.start_proc': 'pltcl.start_proc runs a function when PL/Tcl starts',
  'pltclu.start_proc': 'pltclu.start_proc runs a function when PL/TclU starts',
  'plv8.start_proc': 'plv8.start_proc runs a function when PL/v8 starts',
}

/** Libraries all of whose settings are denied, and why. */
const LIBRARY_PREFIX_MEANING: Record<string, string> = {
  pgaudit: "pgaudit settings change what the database's own audit log records of this session",
  anon: 'anon settings change what PostgreSQL Anonymizer masks',
}

/** Library settings held with a reason of their own. */
const LIBRARY_REVIEW: Record<string, string> = {
  'plpgsql.print_strict_params': 'plpgsql.print_strict_params puts the values a PL/pgSQL function passes to a failed SELECT … INTO STRICT into the error message',
}

/**
 * The catalog key (catalog.ts) whose candidates are the setting prefixes the target's own libraries
 * use, one per prefix, by name: what it preloads, what its C functions, languages and extensions
 * load, and the prefixes of the library settings its server has defined (src/connect/function-catalog.ts).
 * A library outside the list above (a less common extension, the target's own module) is known
 * only by what the server says.
 */
export const LIBRARY_SETTINGS_KEY = 'l:settings'

/** The prefix of a dotted setting name (`rowguard` of `rowguard.enforce`). */
export function settingPrefix(name: string): string {
  return name.slice(0, name.indexOf('.')).toLowerCase()
}

/** The library a setting name belongs to, if its prefix is one a library reserves: on the list, or on the target (`serverLibraries`). */
function libraryOf(name: string, serverLibraries?: ReadonlySet<string>): string | undefined {
  const prefix = settingPrefix(name)
  return LIBRARY_PREFIXES.has(prefix) || serverLibraries?.has(prefix) ? prefix : undefined
}

/** Judges a setting of a library's (`plpgsql.check_asserts`); undefined when it is allowed. */
function judgeLibrarySetting(name: string, library: string, change: SettingChange): SettingVerdict | undefined {
  if (HARMLESS_LIBRARY.has(name)) return undefined
  const safe = SAFE_VALUES[name]
  if (safe) {
    if (change.value !== undefined && !change.dynamic && safe.ok(change.value)) return undefined
    const what = change.dynamic || change.value === undefined ? 'a value dbgate cannot read' : change.value
    return {flag: 'dangerous_setting', reason: `setting ${name} to ${what}: ${safe.reason}`}
  }
  const meaning = LIBRARY_MEANING[name] ?? LIBRARY_PREFIX_MEANING[library]
  if (meaning) return {flag: 'dangerous_setting', reason: meaning}
  const review = LIBRARY_REVIEW[name]
  if (review) return {flag: 'unlisted_setting', reason: review}
  const where = LIBRARY_PREFIXES.has(library) ? '' : ' (a library the target loads: its server names it)'
  return {flag: 'unlisted_setting', reason: `${name} is a setting of the ${library} library${where}, not application state, and is not on dbgate's list of settings a session may change`}
}

/** The schemas a search_path may name without changing where dbgate assumes unqualified names live. */
const KNOWN_SCHEMAS = new Set(['"$user"', '$user', 'public', 'pg_catalog', 'pg_temp'])

const ROLE_SETTINGS = new Set(['role', 'session_authorization'])

/**
 * A custom setting, `prefix.name`, under a prefix no library of the list above reserves, nor one of
 * the target's (`serverLibraries`): application state such as `app.tenant_id`, which only the
 * application's own queries read.
 */
export function isCustomSetting(name: string, serverLibraries?: ReadonlySet<string>): boolean {
  return name.includes('.') && libraryOf(name, serverLibraries) === undefined
}

/**
 * What the tunnel knows of the target's libraries when it judges a custom setting: the prefixes
 * they use, or why it could not read them (then a custom setting is not taken for application state).
 */
export type ServerLibraries = ReadonlySet<string> | {unread: string}

/**
 * Judges a custom setting the analysis let through (`isCustomSetting` by the list alone) by the
 * target's libraries: undefined when it is application state there too.
 */
export function judgeOnTarget(change: SettingChange, libraries: ServerLibraries): SettingVerdict | undefined {
  if (change.reset || !isCustomSetting(change.name)) return undefined
  if ('unread' in libraries) {
    return {
      flag: 'unlisted_setting',
      reason: `dbgate could not read which setting prefixes the target's libraries use (${libraries.unread}), so it cannot tell ${change.name} from a library's setting`,
    }
  }
  return libraries.has(settingPrefix(change.name)) ? judgeSetting(change, libraries) : undefined
}

/** The rule that would allow a refused setting, for hints. */
export function settingHint(name: string): string {
  return `to allow it, add a target rule \`- match: {class: session, settings: [${name}]}\` with \`action: allow\` (see docs/policy.md#session-settings-and-startup-parameters)`
}

export const TEMP_CREATION_REASON = 'search_path may make pg_temp the schema new objects go to, where a type or table named like a built-in type takes its place; name pg_catalog before pg_temp'

/**
 * Whether a change may make pg_temp the schema unqualified new objects go to: the first schema of
 * the path that exists, so pg_temp unless one that certainly exists comes before it. Then
 * `CREATE DOMAIN text …` makes a temporary type that takes the built-in's place once the path is
 * set back (type-shadowing.ts judges only names written with pg_temp). pg_catalog is the one
 * that certainly exists ("$user" and public may not), and nothing can be created in it. A value
 * dbgate cannot read (`set_config('search_path', $1, false)`, a subquery) may be any of these, so
 * it counts as one, whatever a rule allows. (A rule that allows search_path allows
 * `public, pg_catalog`, which lets public's types shadow the built-ins: the catalog sees those.)
 */
export function createsInTemp(change: SettingChange): boolean {
  if (change.name.toLowerCase() !== 'search_path' || change.reset) return false
  if (change.dynamic || change.value === undefined) return true
  return pathCreatesInTemp(change.value)
}

/**
 * Judges one setting change. Undefined means it is allowed as an ordinary session setting; a
 * verdict names the flag the rules key on and why.
 */
export function judgeSetting(change: SettingChange, serverLibraries?: ReadonlySet<string>): SettingVerdict | undefined {
  const name = change.name.toLowerCase()
  if (ROLE_SETTINGS.has(name)) return {flag: 'role_change', class: 'privilege', reason: 'changing the role changes who the server thinks is acting'}
  // Back to the value the session started with, which was checked when it started.
  if (change.reset) return undefined
  // SET TRANSACTION … / SET SESSION CHARACTERISTICS AS TRANSACTION …: isolation and read-only modes.
  if (name === 'transaction' || name === 'session characteristics') return undefined
  const assumed = assumedSetting(name)
  if (assumed) {
    if (change.value !== undefined && !change.dynamic && assumedValueMatches(name, change.value)) return undefined
    const what = change.dynamic || change.value === undefined ? 'to a value dbgate cannot read' : `to ${change.value}`
    return {flag: 'assumed_setting', reason: `setting ${name} ${what}: dbgate's analysis assumes ${assumed.values.join(' or ')}, because ${assumed.why}`}
  }
  if (name === 'search_path') {
    if (change.dynamic || change.value === undefined) {
      return {flag: 'search_path', reason: 'a search_path dbgate cannot read could make unqualified names resolve to tables and functions the rules do not expect'}
    }
    const schemas = searchPathSchemas(change.value)
    const unknown = schemas.filter((s) => !KNOWN_SCHEMAS.has(s))
    if (unknown.length > 0) {
      return {
        flag: 'search_path',
        reason: `search_path names ${unknown.join(', ')}: rules match unqualified names as public.<name>, so tables there would escape schema-qualified rules`,
      }
    }
    if (createsInTemp(change)) return {flag: 'search_path', reason: TEMP_CREATION_REASON}
    // pg_catalog is searched first unless the path lists it later; then a type in public named
    // like a built-in one (a domain public.int4 with a check calling anything) is what `'1'::int4`
    // means, and dbgate takes built-in type names to be the built-ins.
    const shadowing = schemas.slice(0, Math.max(0, schemas.indexOf('pg_catalog'))).filter((s) => s !== 'pg_temp')
    if (shadowing.length === 0) return undefined
    return {
      flag: 'search_path',
      reason: `search_path puts ${shadowing.join(', ')} before pg_catalog, so types and tables there named like built-in ones would be used instead of them`,
    }
  }
  const library = name.includes('.') ? libraryOf(name, serverLibraries) : undefined
  if (library) return judgeLibrarySetting(name, library, change)
  if (isCustomSetting(name)) return undefined
  const meaning = MEANING[name]
  if (meaning) return {flag: 'dangerous_setting', reason: meaning}
  if (HARMLESS.has(name) || HARMLESS_PREFIXES.some((p) => name.startsWith(p))) return undefined
  return {flag: 'unlisted_setting', reason: `${name} is not on dbgate's list of settings a session may change`}
}

/** Compatibility for callers that ask about one name and constant value. */
export function dangerousSetting(name: string, value: string | undefined): SettingVerdict | undefined {
  return judgeSetting({name: name.toLowerCase(), ...(value === undefined ? {} : {value}), reset: false, dynamic: value === undefined})
}

export interface StartupProblem {
  parameter: string
  reason: string
  hint?: string
}

/** Startup packet keys that are not settings: the proxy handles them itself. */
const STARTUP_KEYS = new Set(['user', 'database', 'replication'])

/**
 * Checks the StartupMessage parameters a client sent, as settings. `options` is refused outright
 * because it smuggles arbitrary `-c name=value` settings past every other check; `replication`
 * turns the connection into a replication stream that speaks another protocol. `allowed`
 * decides a setting the built-in list refuses (a target rule may allow it); without it the list
 * decides alone. `libraries` judges custom settings by the target's libraries (`judgeOnTarget`).
 */
export function checkStartupParameters(params: Record<string, string>, allowed?: (change: SettingChange, verdict: SettingVerdict) => boolean, libraries?: ServerLibraries): StartupProblem[] {
  const problems: StartupProblem[] = []
  for (const [key, value] of Object.entries(params)) {
    const name = key.toLowerCase()
    if (name === 'options') {
      problems.push({parameter: key, reason: 'command-line options in the startup packet are not allowed through dbgate', hint: 'Remove it (unset PGOPTIONS); use SET after connecting where policy allows it.'})
      continue
    }
    if (name === 'replication') {
      if (boolSetting(value) === false) continue
      problems.push({parameter: key, reason: 'replication connections are not allowed through dbgate'})
      continue
    }
    if (STARTUP_KEYS.has(name) || name.startsWith('_pq_.')) continue
    const change: SettingChange = {name, value, reset: false, dynamic: false}
    const verdict = judgeSetting(change) ?? (libraries ? judgeOnTarget(change, libraries) : undefined)
    // No rule lifts this one: it is what guard.shadowed-type refuses in SET.
    if (!verdict || (allowed?.(change, verdict) && !createsInTemp(change))) continue
    problems.push({
      parameter: key,
      reason: verdict.reason,
      hint:
        name === 'client_encoding'
          ? 'Use UTF8: set PGCLIENTENCODING=UTF8, or run your client in a UTF-8 locale.'
          : verdict.flag === 'assumed_setting'
            ? 'Remove it from the connection settings.'
            : `Remove it from the connection settings; ${settingHint(name)}.`,
    })
  }
  return problems
}
