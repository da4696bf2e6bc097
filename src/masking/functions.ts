/**
 * What lineage may assume about a built-in function: an allow-list. A function's result is as clean
 * as its arguments only when that is known: every IMMUTABLE built-in (PostgreSQL's own contract,
 * `immutableBuiltins()` in src/sql/builtins.ts), and the stable or volatile ones reviewed below, which compute from their
 * arguments and harmless session settings (time zone, DateStyle), or report server facts and
 * catalog definitions, never stored rows. Anything else, including every function not listed here,
 * is untraceable: its output is masked in a statement that could read sensitive data, and the
 * statement counts as running code the analysis cannot see into.
 *
 * Names are bare: a built-in is only looked up here when the call names no schema or `pg_catalog`,
 * and user-defined functions (any other schema) are never looked up here at all.
 */
import {immutableBuiltins} from '../sql/builtins.js'

export type BuiltinKind =
  /** The result says nothing about the arguments' values (`count(x)`, `pg_typeof(x)`). */
  | 'value-free'
  /** The result is computed from the arguments (and harmless settings) only: as clean as they are. */
  | 'of-arguments'
  /**
   * Stores its arguments where later statements or other sessions read them back (settings,
   * notifications, advisory locks, sequences, large objects, WAL messages): no result filter sees
   * them there, so a call whose arguments are not proven clean is refused.
   */
  | 'stores-arguments'
  /** Reads the session's settings, which code the analysis cannot see into may have written. */
  | 'reads-settings'
  /** Not known to preserve clean values: runs SQL text, reads files, rows, other sessions' text. */
  | 'untraceable'

const VALUE_FREE = words('count pg_typeof num_nulls num_nonnulls')

/**
 * Stable or volatile built-ins reviewed as functions of their arguments: text, date/time and JSON
 * formatting that depends on settings such as TimeZone or DateStyle, type input and output,
 * text search parsing, and aggregates and constructors that are stable only because they call
 * output functions.
 */
const FROM_ARGUMENTS = words(`
  age anytextcat textanycat array_in array_out array_send array_to_json array_to_string array_sample array_shuffle
  anyarray_out anyarray_send anycompatiblearray_out anycompatiblearray_send anycompatiblemultirange_in
  anycompatiblemultirange_out anycompatiblerange_in anycompatiblerange_out anyenum_out anymultirange_in
  anymultirange_out anyrange_in anyrange_out bpcharsend brin_bloom_summary_send brin_minmax_multi_summary_send
  cash_in cash_out concat concat_ws convert convert_from convert_to cstring_send
  date date_add date_subtract date_cmp_timestamptz date_eq_timestamptz date_ge_timestamptz date_gt_timestamptz
  date_le_timestamptz date_lt_timestamptz date_ne_timestamptz date_in date_out date_part date_trunc
  enum_first enum_in enum_last enum_out enum_range enum_send extract format generate_series in_range
  interval_in interval_out interval_pl_timestamptz
  json_agg json_agg_strict json_build_array json_build_object json_object_agg json_object_agg_strict
  json_object_agg_unique json_object_agg_unique_strict json_populate_record json_populate_recordset json_to_record
  json_to_recordset json_to_tsvector jsonb_agg jsonb_agg_strict jsonb_build_array jsonb_build_object
  jsonb_path_exists_tz jsonb_path_match_tz jsonb_path_query_array_tz jsonb_path_query_first_tz jsonb_path_query_tz
  jsonb_populate_record jsonb_populate_record_valid jsonb_populate_recordset jsonb_to_record jsonb_to_recordset
  jsonb_to_tsvector length make_timestamptz money multirange_in multirange_out multirange_send namesend numeric
  oidvectortypes overlaps phraseto_tsquery plainto_tsquery websearch_to_tsquery to_tsquery to_tsvector quote_literal
  quote_nullable range_in range_out range_send record_in record_out record_send row_to_json textsend varcharsend
  time time_in timestamp timestamp_in timestamp_out timestamptz timestamptz_in timestamptz_out timetz timetz_in
  timestamp_cmp_timestamptz timestamp_eq_timestamptz timestamp_ge_timestamptz timestamp_gt_timestamptz
  timestamp_le_timestamptz timestamp_lt_timestamptz timestamp_ne_timestamptz timestamptz_cmp_date
  timestamptz_cmp_timestamp timestamptz_eq_date timestamptz_eq_timestamp timestamptz_ge_date timestamptz_ge_timestamp
  timestamptz_gt_date timestamptz_gt_timestamp timestamptz_le_date timestamptz_le_timestamp timestamptz_lt_date
  timestamptz_lt_timestamp timestamptz_ne_date timestamptz_ne_timestamp timestamptz_mi_interval timestamptz_pl_interval
  timezone to_char to_date to_json to_jsonb to_number to_timestamp ts_debug ts_headline ts_match_tq ts_match_tt
  ts_parse ts_token_type xml xml_in xml_is_well_formed xml_send
  pg_input_error_info pg_input_is_valid pg_column_size pg_column_compression pg_column_toast_chunk_id
  pg_collation_for pg_encoding_to_char pg_char_to_encoding pg_basetype pg_split_walfile_name mxid_age
  pg_mcv_list_send pg_dependencies_send pg_ndistinct_send pg_node_tree_send pg_settings_get_flags
  regclass regclassin regclassout regcollationin regcollationout regconfigin regconfigout regdictionaryin
  regdictionaryout regnamespacein regnamespaceout regoperatorin regoperatorout regoperin regoperout regprocedurein
  regprocedureout regprocin regprocout regrolein regroleout regtypein regtypeout
  to_regclass to_regcollation to_regnamespace to_regoper to_regoperator to_regproc to_regprocedure to_regrole
  to_regtype to_regtypemod
`)

/**
 * Server and session facts that hold no stored values: clocks, identities, transaction and WAL
 * positions, random numbers, sequence positions (`setval` with an untraced value is refused, so
 * they are numbers the tunnel saw written or the server generated), sizes, statistics counters,
 * (The session's cursors, prepared statements and channels are read as settings are: see `READS_SETTINGS`.)
 */
const SERVER_FACTS = words(`
  clock_timestamp current_database current_query current_schema current_schemas current_user session_user
  system_user getpgusername getdatabaseencoding get_current_ts_config gen_random_uuid uuidv4 uuidv7
  inet_client_addr inet_client_port inet_server_addr inet_server_port now statement_timestamp transaction_timestamp
  random random_normal setseed version pg_backend_pid pg_postmaster_start_time pg_conf_load_time
  pg_client_encoding pg_my_temp_schema pg_is_other_temp_schema pg_trigger_depth pg_jit_available pg_numa_available
  pg_is_in_recovery pg_is_wal_replay_paused pg_get_wal_replay_pause_state pg_current_wal_lsn pg_current_wal_flush_lsn
  pg_current_wal_insert_lsn pg_last_wal_receive_lsn pg_last_wal_replay_lsn pg_last_xact_replay_timestamp
  pg_last_committed_xact pg_current_snapshot pg_current_xact_id pg_current_xact_id_if_assigned txid_current
  txid_current_if_assigned txid_current_snapshot txid_status pg_xact_status pg_xact_commit_timestamp
  pg_xact_commit_timestamp_origin pg_notification_queue_usage pg_sleep pg_sleep_for
  pg_sleep_until nextval currval lastval pg_sequence_last_value pg_get_sequence_data pg_sequence_parameters
  pg_blocking_pids pg_safe_snapshot_blocking_pids pg_isolation_test_session_is_blocked pg_control_checkpoint
  pg_control_init pg_control_recovery pg_control_system pg_current_logfile pg_available_extensions
  pg_available_extension_versions pg_extension_update_paths pg_config pg_timezone_names pg_timezone_abbrevs_abbrevs
  pg_timezone_abbrevs_zone pg_get_keywords pg_get_wait_events pg_get_wal_resource_managers pg_get_wal_summarizer_state
  pg_available_wal_summaries pg_wal_summary_contents pg_get_aios pg_get_shmem_allocations
  pg_get_shmem_allocations_numa pg_get_loaded_modules pg_get_multixact_members pg_lock_status pg_prepared_xact
  pg_get_replication_slots pg_get_publication_tables pg_show_replication_origin_status
  pg_replication_origin_oid pg_replication_origin_progress pg_replication_origin_session_is_setup
  pg_replication_origin_session_progress pg_stat_file pg_ls_dir pg_ls_logdir pg_ls_waldir pg_ls_tmpdir
  pg_ls_archive_statusdir pg_ls_logicalsnapdir pg_ls_logicalmapdir pg_ls_replslotdir pg_ls_summariesdir
  pg_tablespace_databases pg_tablespace_location pg_tablespace_size pg_database_size pg_relation_size pg_table_size
  pg_indexes_size pg_total_relation_size pg_database_collation_actual_version pg_collation_actual_version
  pg_filenode_relation pg_relation_filenode pg_relation_filepath pg_partition_tree pg_partition_ancestors
  pg_event_trigger_ddl_commands pg_event_trigger_dropped_objects pg_event_trigger_table_rewrite_oid
  pg_event_trigger_table_rewrite_reason row_security_active currtid2 pg_stat_have_stats pg_stat_clear_snapshot
  pg_stat_force_next_flush pg_stat_get_io pg_stat_get_wal pg_stat_get_archiver pg_stat_get_slru
  pg_stat_get_recovery_prefetch pg_stat_get_replication_slot pg_stat_get_subscription pg_stat_get_subscription_stats
  pg_stat_get_wal_senders pg_stat_get_progress_info pg_stat_get_snapshot_timestamp
  pg_stat_get_backend_idset pg_stat_get_backend_pid pg_stat_get_backend_dbid pg_stat_get_backend_userid
  pg_stat_get_backend_activity_start pg_stat_get_backend_xact_start pg_stat_get_backend_start
  pg_stat_get_backend_client_port pg_stat_get_backend_wait_event
  pg_stat_get_backend_wait_event_type pg_stat_get_backend_subxact pg_stat_get_backend_io pg_stat_get_backend_wal
  pg_stat_get_buf_alloc
`)

/**
 * Statistics counters and timestamps of tables, indexes, functions, databases and the server's
 * processes (not `pg_stat_get_activity` or `pg_stat_get_backend_activity`: other sessions' SQL; nor
 * `pg_stat_get_backend_client_addr`, where other people connect from, or `pg_stat_get_wal_receiver`,
 * the primary's address and the standby's connection string).
 */
const STATISTICS_COUNTERS = words(`
  pg_stat_get_analyze_count pg_stat_get_autoanalyze_count pg_stat_get_autovacuum_count
  pg_stat_get_bgwriter_buf_written_clean pg_stat_get_bgwriter_maxwritten_clean pg_stat_get_bgwriter_stat_reset_time
  pg_stat_get_blocks_fetched pg_stat_get_blocks_hit pg_stat_get_checkpointer_buffers_written
  pg_stat_get_checkpointer_num_performed pg_stat_get_checkpointer_num_requested pg_stat_get_checkpointer_num_timed
  pg_stat_get_checkpointer_restartpoints_performed pg_stat_get_checkpointer_restartpoints_requested
  pg_stat_get_checkpointer_restartpoints_timed pg_stat_get_checkpointer_slru_written
  pg_stat_get_checkpointer_stat_reset_time pg_stat_get_checkpointer_sync_time pg_stat_get_checkpointer_write_time
  pg_stat_get_db_active_time pg_stat_get_db_blk_read_time pg_stat_get_db_blk_write_time pg_stat_get_db_blocks_fetched
  pg_stat_get_db_blocks_hit pg_stat_get_db_checksum_failures pg_stat_get_db_checksum_last_failure
  pg_stat_get_db_conflict_all pg_stat_get_db_conflict_bufferpin pg_stat_get_db_conflict_lock
  pg_stat_get_db_conflict_logicalslot pg_stat_get_db_conflict_snapshot pg_stat_get_db_conflict_startup_deadlock
  pg_stat_get_db_conflict_tablespace pg_stat_get_db_deadlocks pg_stat_get_db_idle_in_transaction_time
  pg_stat_get_db_numbackends pg_stat_get_db_parallel_workers_launched pg_stat_get_db_parallel_workers_to_launch
  pg_stat_get_db_session_time pg_stat_get_db_sessions pg_stat_get_db_sessions_abandoned pg_stat_get_db_sessions_fatal
  pg_stat_get_db_sessions_killed pg_stat_get_db_stat_reset_time pg_stat_get_db_temp_bytes pg_stat_get_db_temp_files
  pg_stat_get_db_tuples_deleted pg_stat_get_db_tuples_fetched pg_stat_get_db_tuples_inserted
  pg_stat_get_db_tuples_returned pg_stat_get_db_tuples_updated pg_stat_get_db_xact_commit pg_stat_get_db_xact_rollback
  pg_stat_get_dead_tuples pg_stat_get_function_calls pg_stat_get_function_self_time pg_stat_get_function_total_time
  pg_stat_get_ins_since_vacuum pg_stat_get_last_analyze_time pg_stat_get_last_autoanalyze_time
  pg_stat_get_last_autovacuum_time pg_stat_get_last_vacuum_time pg_stat_get_lastscan pg_stat_get_live_tuples
  pg_stat_get_mod_since_analyze pg_stat_get_numscans pg_stat_get_total_analyze_time pg_stat_get_total_autoanalyze_time
  pg_stat_get_total_autovacuum_time pg_stat_get_total_vacuum_time pg_stat_get_tuples_deleted
  pg_stat_get_tuples_fetched pg_stat_get_tuples_hot_updated pg_stat_get_tuples_inserted
  pg_stat_get_tuples_newpage_updated pg_stat_get_tuples_returned pg_stat_get_tuples_updated pg_stat_get_vacuum_count
  pg_stat_get_xact_blocks_fetched pg_stat_get_xact_blocks_hit pg_stat_get_xact_function_calls
  pg_stat_get_xact_function_self_time pg_stat_get_xact_function_total_time pg_stat_get_xact_numscans
  pg_stat_get_xact_tuples_deleted pg_stat_get_xact_tuples_fetched pg_stat_get_xact_tuples_hot_updated
  pg_stat_get_xact_tuples_inserted pg_stat_get_xact_tuples_newpage_updated pg_stat_get_xact_tuples_returned
  pg_stat_get_xact_tuples_updated
`)

/** Definitions, names and privileges from the system catalog: what psql's `\d` and ORMs read. */
const CATALOG_READERS = words(`
  aclexplode aclitemin aclitemout col_description obj_description shobj_description format_type
  has_any_column_privilege has_column_privilege has_database_privilege has_foreign_data_wrapper_privilege
  has_function_privilege has_language_privilege has_largeobject_privilege has_parameter_privilege
  has_schema_privilege has_sequence_privilege has_server_privilege has_table_privilege has_tablespace_privilege
  has_type_privilege pg_has_role pg_describe_object pg_get_acl pg_get_catalog_foreign_keys pg_get_constraintdef
  pg_get_expr pg_get_function_arg_default pg_get_function_arguments pg_get_function_identity_arguments
  pg_get_function_result pg_get_function_sqlbody pg_get_functiondef pg_get_indexdef pg_get_object_address
  pg_get_partition_constraintdef pg_get_partkeydef pg_get_replica_identity_index pg_get_ruledef
  pg_get_serial_sequence pg_get_statisticsobjdef pg_get_statisticsobjdef_columns pg_get_statisticsobjdef_expressions
  pg_get_triggerdef pg_get_userbyid pg_get_viewdef pg_identify_object pg_identify_object_as_address
  pg_index_column_has_property pg_index_has_property pg_indexam_has_property pg_options_to_table
  pg_relation_is_publishable pg_relation_is_updatable pg_column_is_updatable pg_collation_is_visible
  pg_conversion_is_visible pg_function_is_visible pg_opclass_is_visible pg_operator_is_visible
  pg_opfamily_is_visible pg_statistics_obj_is_visible pg_table_is_visible pg_ts_config_is_visible
  pg_ts_dict_is_visible pg_ts_parser_is_visible pg_ts_template_is_visible pg_type_is_visible
`)

/** Where the stored arguments can be read back: see `stores-arguments`. */
const STORES_ARGUMENTS = words(`
  set_config pg_notify setval pg_logical_emit_message
  pg_advisory_lock pg_advisory_lock_shared pg_advisory_unlock pg_advisory_unlock_shared pg_advisory_unlock_all
  pg_advisory_xact_lock pg_advisory_xact_lock_shared pg_try_advisory_lock pg_try_advisory_lock_shared
  pg_try_advisory_xact_lock pg_try_advisory_xact_lock_shared
  lo_creat lo_create lo_from_bytea lo_put lowrite lo_import lo_export lo_open lo_close lo_lseek lo_lseek64 lo_tell
  lo_tell64 lo_truncate lo_truncate64 lo_unlink
  pg_create_restore_point pg_replication_origin_create pg_create_physical_replication_slot
  pg_create_logical_replication_slot pg_copy_physical_replication_slot pg_copy_logical_replication_slot pg_backup_start
`)

/**
 * `current_setting('x.y')`, and `pg_settings` through the function behind it; and the rest of the
 * session's state that code the analysis cannot see into may have written: its cursors
 * (`OPEN c FOR EXECUTE format('select %L', name)` in a DO block), prepared statements and the
 * channels it listens on, whose names and texts are the client's own only until then; and its
 * memory contexts, whose identifiers are those prepared statements' and cursors' texts and names.
 */
// timeofday() prints the clock with the session's TimeZone, whose abbreviation (a POSIX zone such
// as 'ALICENOVAK5') code the analysis cannot see into may have set to a value it read.
const READS_SETTINGS = words('current_setting pg_show_all_settings pg_cursor pg_prepared_statement pg_listening_channels pg_get_backend_memory_contexts timeofday')

const KIND = new Map<string, BuiltinKind>()
for (const n of immutableBuiltins()) KIND.set(n, 'of-arguments')
for (const n of [...FROM_ARGUMENTS, ...SERVER_FACTS, ...STATISTICS_COUNTERS, ...CATALOG_READERS]) KIND.set(n, 'of-arguments')
for (const n of STORES_ARGUMENTS) KIND.set(n, 'stores-arguments')
for (const n of READS_SETTINGS) KIND.set(n, 'reads-settings')
for (const n of VALUE_FREE) KIND.set(n, 'value-free')

/** What lineage may assume about the built-in function `name` (bare, lower-case as parsed). */
export function builtinKind(name: string): BuiltinKind {
  return KIND.get(name) ?? 'untraceable'
}

/** Every name the reviewed lists hold, for the test that checks them against a server's catalog. */
export const REVIEWED_BUILTINS: readonly string[] = [...VALUE_FREE, ...FROM_ARGUMENTS, ...SERVER_FACTS, ...STATISTICS_COUNTERS, ...CATALOG_READERS, ...STORES_ARGUMENTS, ...READS_SETTINGS]

function words(s: string): string[] {
  return s.split(/\s+/).filter(Boolean)
}
