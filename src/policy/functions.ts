/**
 * Built-in and well-known extension functions whose effect is not visible in the statement that
 * calls them: they read server files, signal processes, or run SQL text of their own. They are
 * matched on the bare name whatever schema the call names, because extensions such as dblink live
 * in whichever schema they were installed into.
 */
import type {OperationFlag, StatementClass} from './types.js'

export interface FunctionEffect {
  class: StatementClass
  flag: OperationFlag
}

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
  'pg_logdir_ls',
  'pg_file_write',
  'pg_file_rename',
  'pg_file_unlink',
  'pg_file_sync',
  'pg_file_settings',
  'lo_import',
  'lo_export',
]

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
  'pg_start_backup',
  'pg_stop_backup',
  'pg_wal_replay_pause',
  'pg_wal_replay_resume',
  'pg_log_backend_memory_contexts',
  'pg_create_physical_replication_slot',
  'pg_create_logical_replication_slot',
  'pg_drop_replication_slot',
  'pg_copy_physical_replication_slot',
  'pg_copy_logical_replication_slot',
  'pg_replication_slot_advance',
  'pg_logical_slot_get_changes',
  'pg_logical_slot_get_binary_changes',
  'pg_logical_emit_message',
  'pg_replication_origin_create',
  'pg_replication_origin_drop',
  'pg_replication_origin_advance',
  'pg_replication_origin_session_setup',
  'pg_stat_reset',
  'pg_stat_reset_shared',
  'pg_stat_reset_single_table_counters',
  'pg_stat_reset_single_function_counters',
  'pg_stat_reset_slru',
  'pg_stat_reset_replication_slot',
  'pg_stat_reset_subscription_stats',
  'pg_stat_statements_reset',
]

/** These execute SQL given as a string, so what they run never reaches the parser. */
const DYNAMIC_SQL = [
  'query_to_xml',
  'query_to_xmlschema',
  'query_to_xml_and_xmlschema',
  'table_to_xml',
  'table_to_xmlschema',
  'table_to_xml_and_xmlschema',
  'schema_to_xml',
  'schema_to_xmlschema',
  'schema_to_xml_and_xmlschema',
  'database_to_xml',
  'database_to_xmlschema',
  'database_to_xml_and_xmlschema',
]

const EFFECTS = new Map<string, FunctionEffect>([
  ...SERVER_FILE.map((n) => [n, {class: 'admin', flag: 'server_file'}] as const),
  ...PROCESS.map((n) => [n, {class: 'admin', flag: 'process'}] as const),
  ...DYNAMIC_SQL.map((n) => [n, {class: 'admin', flag: 'dynamic_sql'}] as const),
])

/** The effect of calling `name` (the last part of a possibly qualified name), if it is one we know. */
export function functionEffect(name: string): FunctionEffect | undefined {
  const bare = name.toLowerCase()
  // Every dblink entry point (dblink, dblink_exec, dblink_connect_u, dblink_send_query, ...) either
  // opens a connection or runs remote SQL, so the whole family is treated alike.
  if (bare === 'dblink' || bare.startsWith('dblink_')) return {class: 'admin', flag: 'dynamic_sql'}
  return EFFECTS.get(bare)
}
