/**
 * What masking may assume about PostgreSQL's own relations: an allow-list. A relation of
 * pg_catalog or information_schema is read in clear only when it has been reviewed as holding
 * definitions, names, privileges, counters and server facts; the columns of reviewed relations
 * that hold secrets or copies of stored values are named with their category. A system relation
 * nobody reviewed (one a newer PostgreSQL release adds) is masked whole, as a relation the
 * catalog does not know is.
 *
 * Reviewed against PostgreSQL 18; test/masking/system-relations.test.ts fails, naming the
 * relations, when a server has one this list does not hold.
 */
import type {MaskingCategory} from './categories.js'
import {INFORMATION_SCHEMA_RELATIONS} from '../sql/system-relations.js'

/**
 * How lineage reads one system relation:
 * - `catalog`: every column is clean (definitions, names, counters; the text of definitions is the
 *   DDL's own, see "Honest limits" in docs/masking.md for what unseen code may copy there);
 * - a map: the columns named hold what their category says, the others are clean;
 * - `settings`: the columns named show the session's own state, which code the analysis cannot see
 *   into may have written (masked as settings are), the others are clean;
 * - `whole`: samples or copies of stored values, masked whatever the column.
 */
export type SystemRelationKind = {kind: 'catalog'} | {kind: 'columns'; columns: Readonly<Record<string, MaskingCategory>>} | {kind: 'settings'; columns: ReadonlySet<string>} | {kind: 'whole'}

const CATALOG: SystemRelationKind = Object.freeze({kind: 'catalog'})
const WHOLE: SystemRelationKind = Object.freeze({kind: 'whole'})

/** pg_catalog's tables and views that hold only definitions, names, privileges, counters and server facts. */
const CATALOG_ONLY = words(`
  pg_aggregate pg_aios pg_am pg_amop pg_amproc pg_attrdef pg_auth_members pg_available_extension_versions
  pg_available_extensions pg_cast pg_class pg_collation pg_config pg_constraint pg_conversion pg_database
  pg_db_role_setting pg_default_acl pg_depend pg_description pg_enum pg_event_trigger pg_extension
  pg_foreign_data_wrapper pg_foreign_server pg_foreign_table pg_group pg_ident_file_mappings pg_index pg_indexes
  pg_inherits pg_init_privs pg_language pg_largeobject_metadata pg_locks pg_matviews pg_namespace pg_opclass
  pg_operator pg_opfamily pg_parameter_acl pg_partitioned_table pg_policies pg_policy pg_prepared_xacts pg_proc
  pg_publication pg_publication_namespace pg_publication_rel pg_publication_tables pg_range pg_replication_origin
  pg_replication_origin_status pg_replication_slots pg_rewrite pg_roles pg_rules pg_seclabel pg_seclabels
  pg_sequence pg_sequences pg_shdepend pg_shdescription pg_shmem_allocations pg_shmem_allocations_numa pg_shseclabel
  pg_stat_all_indexes pg_stat_all_tables pg_stat_archiver pg_stat_bgwriter pg_stat_checkpointer pg_stat_database
  pg_stat_database_conflicts pg_stat_io pg_stat_progress_analyze pg_stat_progress_basebackup
  pg_stat_progress_cluster pg_stat_progress_copy pg_stat_progress_create_index pg_stat_progress_vacuum
  pg_stat_recovery_prefetch pg_stat_replication_slots pg_stat_slru
  pg_stat_subscription pg_stat_subscription_stats pg_stat_sys_indexes pg_stat_sys_tables pg_stat_user_functions
  pg_stat_user_indexes pg_stat_user_tables pg_stat_wal pg_stat_xact_all_tables
  pg_stat_xact_sys_tables pg_stat_xact_user_functions pg_stat_xact_user_tables pg_statio_all_indexes
  pg_statio_all_sequences pg_statio_all_tables pg_statio_sys_indexes pg_statio_sys_sequences pg_statio_sys_tables
  pg_statio_user_indexes pg_statio_user_sequences pg_statio_user_tables pg_statistic_ext pg_subscription_rel
  pg_tables pg_tablespace pg_timezone_abbrevs pg_timezone_names pg_transform pg_trigger pg_ts_config
  pg_ts_config_map pg_ts_dict pg_ts_parser pg_ts_template pg_type pg_user pg_views pg_wait_events
`)

/** Reviewed relations with columns that hold secrets or other sessions' text. */
const SENSITIVE_COLUMNS: Record<string, Record<string, MaskingCategory>> = {
  // The value every row that predates an ADD COLUMN … DEFAULT has in that column, computed once
  // (a stable function's result, `current_setting('app.key')`) and kept after DROP DEFAULT: a
  // stored value of the column, whatever the column is.
  pg_attribute: {attmissingval: 'untraceable'},
  pg_authid: {rolpassword: 'password'},
  pg_shadow: {passwd: 'password'},
  pg_user_mapping: {umoptions: 'secret'},
  pg_user_mappings: {umoptions: 'secret'},
  // A subscription's connection string may carry the publisher's password.
  pg_subscription: {subconninfo: 'secret'},
  // The server's configuration files: passphrase commands, replication connection strings, LDAP bind passwords.
  pg_file_settings: {setting: 'secret'},
  pg_hba_file_rules: {options: 'secret'},
  // Other sessions' SQL with its literals, and application names any session's unseen code may have set to values it read;
  // where other people connect from (their address, and its reverse-DNS name).
  pg_stat_activity: {query: 'untraceable', application_name: 'untraceable', client_addr: 'ip_address', client_hostname: 'untraceable'},
  // A standby's address and name, and the application name its connection string gave.
  pg_stat_replication: {application_name: 'untraceable', client_addr: 'ip_address', client_hostname: 'untraceable'},
  // Other people's client certificates (a DN names its holder, often with an e-mail address) and
  // Kerberos principals (user@REALM).
  pg_stat_ssl: {client_dn: 'untraceable', client_serial: 'untraceable', issuer_dn: 'untraceable'},
  pg_stat_gssapi: {principal: 'untraceable'},
  // The primary's address and the standby's connection string (its options besides the password).
  pg_stat_wal_receiver: {sender_host: 'untraceable', conninfo: 'secret'},
}

/** Planner statistics (most common values and histograms are samples of the columns themselves) and large objects' contents. */
const STORED_VALUES = words('pg_stats pg_stats_ext pg_stats_ext_exprs pg_statistic pg_statistic_ext_data pg_largeobject')

/**
 * System views that show the session's own state: its settings, and its cursors and prepared
 * statements, whose names and texts are the client's own unless unseen code opened them; memory
 * contexts are identified by those statements' texts and cursors' names.
 */
const SESSION_STATE: Record<string, readonly string[]> = {
  pg_settings: ['setting', 'reset_val'],
  pg_cursors: ['name', 'statement'],
  pg_prepared_statements: ['name', 'statement'],
  pg_backend_memory_contexts: ['name', 'ident'],
}

/** information_schema's views of user mappings show their options, a password among them. */
const INFORMATION_SCHEMA_SENSITIVE: Record<string, Record<string, MaskingCategory>> = {
  _pg_user_mappings: {umoptions: 'secret'},
  user_mapping_options: {option_value: 'secret'},
}

const PG_CATALOG = new Map<string, SystemRelationKind>()
for (const n of CATALOG_ONLY) PG_CATALOG.set(n, CATALOG)
for (const [n, columns] of Object.entries(SENSITIVE_COLUMNS)) PG_CATALOG.set(n, {kind: 'columns', columns})
for (const n of STORED_VALUES) PG_CATALOG.set(n, WHOLE)
for (const [n, columns] of Object.entries(SESSION_STATE)) PG_CATALOG.set(n, {kind: 'settings', columns: new Set(columns)})

/**
 * How lineage reads the system relation `name` of `schema` (`pg_catalog` when the name was
 * unqualified); undefined when nobody reviewed it, and then it is masked whole.
 */
export function systemRelationKind(schema: 'pg_catalog' | 'information_schema', name: string): SystemRelationKind | undefined {
  if (schema === 'pg_catalog') return PG_CATALOG.get(name)
  if (!INFORMATION_SCHEMA_RELATIONS.has(name)) return undefined
  const columns = INFORMATION_SCHEMA_SENSITIVE[name]
  return columns ? {kind: 'columns', columns} : CATALOG
}

/** Every pg_catalog relation reviewed, for the test that checks them against a server's catalog. */
export const REVIEWED_CATALOG_RELATIONS: readonly string[] = [...PG_CATALOG.keys()]

function words(s: string): string[] {
  return s.split(/\s+/).filter(Boolean)
}
