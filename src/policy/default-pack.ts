/**
 * The built-in guardrails (`policy: default`). Denials come first, then what needs a reviewer, then
 * warnings, then what is allowed, so the first rule that matches is also the strictest that applies.
 * Every class has a rule here, so with this pack nothing is decided by the fallback.
 */
import type {BuiltinRule, Operation} from './types.js'

const RELATION_DROPS = new Set(['table', 'schema', 'database', 'matview', 'foreign_table'])

const ASK = 'ask a reviewer, or add a target rule that allows it for your group; `dbgate policy check` shows how dbgate reads a statement'

const has = (op: Operation, ...flags: Operation['flags']): boolean => flags.some((f) => op.flags.includes(f))

export const defaultPack: readonly BuiltinRule[] = [
  {
    id: 'default.unknown',
    action: 'deny',
    reason: 'dbgate could not parse or judge this statement, so it is not let through',
    hint: 'check the syntax; run `dbgate policy check` to see how dbgate reads it',
    test: (op) => op.class === 'unknown',
  },
  {
    id: 'default.no-drop',
    action: 'deny',
    reason: 'DROP removes a table, schema or database with all of its data',
    hint: ASK,
    test: (op) => (op.command === 'drop' && RELATION_DROPS.has(op.object ?? '')) || op.command === 'drop_owned',
  },
  {
    id: 'default.no-truncate',
    action: 'deny',
    reason: 'TRUNCATE removes every row of a table',
    hint: 'use DELETE with a WHERE clause, or ' + ASK,
    test: (op) => op.command === 'truncate',
  },
  {
    id: 'default.no-unfiltered-delete',
    action: 'deny',
    reason: 'DELETE without a WHERE clause, or with one that is always true, removes every row',
    hint: 'add a WHERE clause that picks the rows to delete',
    test: (op) => op.command === 'delete' && (op.where === 'none' || op.where === 'trivial'),
  },
  {
    id: 'default.no-unfiltered-update',
    action: 'deny',
    reason: 'UPDATE without a WHERE clause, or with one that is always true, changes every row',
    hint: 'add a WHERE clause that picks the rows to update',
    test: (op) => op.command === 'update' && (op.where === 'none' || op.where === 'trivial'),
  },
  {
    id: 'default.no-alter-system',
    action: 'deny',
    reason: 'ALTER SYSTEM rewrites the server configuration',
    hint: 'change server settings through your configuration management',
    test: (op) => op.command === 'alter_system',
  },
  {
    id: 'default.no-copy-program',
    action: 'deny',
    reason: 'COPY ... PROGRAM runs a shell command on the database server',
    hint: 'use COPY ... FROM STDIN / TO STDOUT (psql \\copy) instead',
    test: (op) => op.command === 'copy' && has(op, 'program'),
  },
  {
    id: 'default.no-copy-file',
    action: 'deny',
    reason: "COPY to or from a file reads or writes the database server's disk",
    hint: 'use COPY ... FROM STDIN / TO STDOUT (psql \\copy) instead',
    test: (op) => op.command === 'copy' && has(op, 'server_file'),
  },
  {
    id: 'default.no-privilege',
    action: 'deny',
    reason: 'roles, grants and role switches are managed outside dbgate',
    hint: 'dbgate decides access from your identity provider groups; ask an administrator',
    test: (op) => op.class === 'privilege',
  },
  {
    id: 'default.no-server-functions',
    action: 'deny',
    reason: 'this function reads server files, signals server processes or runs SQL that dbgate cannot see',
    hint: ASK,
    test: (op) => op.command === 'function' && has(op, 'server_file', 'process', 'dynamic_sql'),
  },
  {
    id: 'default.no-server-files',
    action: 'deny',
    reason: "this statement loads or creates files on the database server's disk",
    hint: ASK,
    test: (op) => op.command !== 'copy' && op.command !== 'function' && has(op, 'server_file'),
  },
  {
    id: 'default.no-dangerous-setting',
    action: 'deny',
    reason: 'this setting changes how the server reads later statements, or turns off triggers and constraints',
    hint: 'leave client_encoding at UTF8 and standard_conforming_strings on',
    test: (op) => has(op, 'dangerous_setting'),
  },
  {
    id: 'default.rule-trigger-approval',
    action: 'require_approval',
    reason: 'rules and triggers run code on later statements, which dbgate cannot see',
    hint: ASK,
    test: (op) => has(op, 'rule', 'trigger'),
  },
  {
    id: 'default.ddl-approval',
    action: 'require_approval',
    reason: 'schema changes need a reviewer',
    hint: ASK,
    test: (op) => op.class === 'ddl',
  },
  {
    id: 'default.opaque-approval',
    action: 'require_approval',
    reason: 'DO blocks, procedure calls and new functions run code that dbgate cannot inspect',
    hint: ASK,
    test: (op) => op.class === 'opaque',
  },
  {
    id: 'default.admin-approval',
    action: 'require_approval',
    reason: 'maintenance and server administration commands need a reviewer',
    hint: ASK,
    test: (op) => op.class === 'admin',
  },
  {
    id: 'default.search-path-warning',
    action: 'warn',
    reason: 'search_path changed: table rules match unqualified names as public.<name>, which may no longer be the table used',
    test: (op) => has(op, 'search_path'),
  },
  {id: 'default.allow-read', action: 'allow', reason: 'reads are allowed', test: (op) => op.class === 'read'},
  {id: 'default.allow-write', action: 'allow', reason: 'filtered writes are allowed', test: (op) => op.class === 'write'},
  {id: 'default.allow-transaction', action: 'allow', reason: 'transaction control is allowed', test: (op) => op.class === 'transaction'},
  {id: 'default.allow-session', action: 'allow', reason: 'ordinary session settings are allowed', test: (op) => op.class === 'session'},
]
