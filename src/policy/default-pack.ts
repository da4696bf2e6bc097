/**
 * The built-in guardrails (`policy: default`). Denials come first, then what needs a reviewer, then
 * warnings, then what is allowed, so the first rule that matches is also the strictest that applies.
 * Every class has a rule here, so with this pack nothing is decided by the fallback.
 */
import {settingHint} from './settings.js'
import type {BuiltinRule, Operation} from './types.js'

const RELATION_DROPS = new Set(['table', 'schema', 'database', 'matview', 'foreign_table'])

const ASK = 'ask a reviewer, or add a target rule that allows it for your group; `dbgate policy check` shows how dbgate reads a statement'

const has = (op: Operation, ...flags: Operation['flags']): boolean => flags.some((f) => op.flags.includes(f))

/** The function a `function` operation is about, as the catalog names it (schema-qualified). */
const fnOf = (op: Operation): string => op.functions[0] ?? 'the function'

/** Maintenance that only reads and updates statistics and visibility, without rewriting tables or taking exclusive locks. */
const PLAIN_MAINTENANCE = new Set(['vacuum', 'analyze'])

export const defaultPack: readonly BuiltinRule[] = [
  {
    // Before default.unknown, whose reason and hint (could not parse, check the syntax) are about
    // another case: this statement parsed, and what it does is known, only not which setting.
    id: 'default.no-hidden-setting',
    action: 'deny',
    reason: 'this statement changes session settings without showing which setting gets which value (a write to pg_settings runs set_config for each row it matches; so does a view or rule that calls set_config), so dbgate cannot judge it',
    hint: "change the setting with SET name = value, or with set_config('name', 'value', false) called directly: dbgate judges those setting by setting. Reading pg_settings stays allowed",
    test: (op) => has(op, 'hidden_setting'),
  },
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
    id: 'default.no-dynamic-sql',
    action: 'deny',
    reason: 'this function runs SQL given as text (or builds queries from names given as text), which no analysis can see into',
    hint: (op) => `run the SQL itself instead, so dbgate can judge it; to allow this call anyway, add a target rule \`- match: {class: admin, command: function, functions: [${fnOf(op)}]}\` with \`action: allow\``,
    test: (op) => op.command === 'function' && has(op, 'dynamic_sql'),
  },
  {
    id: 'default.no-server-functions',
    action: 'deny',
    reason: 'this function reads server files or signals or reconfigures server processes',
    hint: (op) => `${ASK}; the rule would be \`- match: {class: admin, command: function, functions: [${fnOf(op)}]}\``,
    test: (op) => op.command === 'function' && has(op, 'server_file', 'process'),
  },
  {
    id: 'default.unknown-function',
    action: 'deny',
    reason: 'this statement calls a function or operator dbgate could not find in the target\'s catalog, so it cannot tell what it does',
    hint: (op) =>
      `check the name and argument count; if it is created in this session, or should run anyway, add a target rule \`- match: {class: opaque, command: function, functions: [${fnOf(op)}]}\` with \`action: allow\``,
    test: (op) => has(op, 'unknown_function'),
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
    reason: 'this setting changes what later statements mean (which rows a condition picks, which triggers and checks run, which tables a name means) or loads server code',
    hint: (op) => settingHint(op.setting?.name ?? 'the_setting'),
    test: (op) => has(op, 'dangerous_setting', 'search_path'),
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
    // A large object has no WHERE to bound: one call per row of whatever the call runs over, so
    // `select lo_unlink(oid) from pg_largeobject_metadata` removes every one of them.
    id: 'default.large-object-approval',
    action: 'require_approval',
    reason: 'this statement removes or overwrites large objects (lo_unlink, lo_truncate, lo_put, lowrite), as many as the rows it calls them for',
    hint: (op) => `${ASK}; the rule would be \`- match: {class: write, command: function, functions: [${fnOf(op)}]}\` with \`action: allow\``,
    test: (op) => op.command === 'function' && has(op, 'large_object'),
  },
  {
    // Moved back, a sequence hands out keys that exist: the application's inserts fail until it is set right.
    id: 'default.sequence-reset-approval',
    action: 'require_approval',
    reason: "this statement sets a sequence to a value it chooses (setval); moved back, the application's next inserts collide with rows that exist",
    hint: (op) => `${ASK}; nextval stays allowed. The rule would be \`- match: {class: write, command: function, functions: [${fnOf(op)}]}\` with \`action: allow\``,
    test: (op) => op.command === 'function' && has(op, 'sequence_reset'),
  },
  {
    // Before default.volatile-function, whose reason and hint are about a function the statement names.
    id: 'default.every-table-code',
    action: 'require_approval',
    reason: 'this statement runs the code stored with every table it reaches (index expressions, extended statistics expressions, range functions), which dbgate does not look up for it, so it cannot see what that code does',
    hint: `name the tables (ANALYZE t1, t2; REINDEX TABLE t), whose code dbgate judges as a write's; or ${ASK}`,
    test: (op) => has(op, 'every_table_code'),
  },
  {
    id: 'default.volatile-function',
    action: 'require_approval',
    reason: 'this statement calls a volatile function, which may change data; dbgate cannot see what it does',
    hint: (op) => `${ASK}; a STABLE or IMMUTABLE function whose body only reads is a read. To allow this one, add a target rule \`- match: {class: write, command: function, functions: [${fnOf(op)}]}\` with \`action: allow\``,
    test: (op) => has(op, 'volatile_function'),
  },
  {
    id: 'default.setting-approval',
    action: 'require_approval',
    reason: 'this setting is not on the list of settings a session may change on its own',
    hint: (op) => `${ASK}; ${settingHint(op.setting?.name ?? 'the_setting')}`,
    test: (op) => has(op, 'unlisted_setting'),
  },
  {
    // COMMIT PREPARED and ROLLBACK PREPARED finish a transaction by its name, whichever session
    // prepared it (every session that signs in as the same database role may): one client can
    // discard or force through another's prepared work.
    id: 'default.two-phase-approval',
    action: 'require_approval',
    reason: "COMMIT PREPARED and ROLLBACK PREPARED finish a prepared transaction by name, which may be another session's work",
    hint: ASK,
    test: (op) => op.command === 'commit_prepared' || op.command === 'rollback_prepared',
  },
  {
    // Before default.opaque-approval, whose reason is about DO blocks and new functions.
    id: 'default.unsettled-catalog-approval',
    action: 'require_approval',
    reason: 'this statement calls functions, operators, casts or views after a change to the catalog that this session has not committed yet, and dbgate reads the catalog only as committed, so it cannot see what they run now',
    hint: `send it after the COMMIT, when dbgate reads the committed catalog and judges it by what it runs then; or ${ASK}`,
    test: (op) => has(op, 'unsettled_catalog'),
  },
  {
    id: 'default.opaque-approval',
    action: 'require_approval',
    reason: 'DO blocks, procedure calls and new functions run code that dbgate cannot inspect',
    hint: ASK,
    test: (op) => op.class === 'opaque',
  },
  {
    id: 'default.allow-maintenance',
    action: 'allow',
    reason: 'plain VACUUM and ANALYZE only update statistics and visibility information; they change no rows and take no exclusive lock',
    test: (op) => PLAIN_MAINTENANCE.has(op.command) && !has(op, 'heavy_maintenance'),
  },
  {
    id: 'default.admin-approval',
    action: 'require_approval',
    reason: 'maintenance that rewrites tables or takes exclusive locks (VACUUM FULL, CLUSTER, REINDEX), and server administration, need a reviewer',
    hint: ASK,
    test: (op) => op.class === 'admin',
  },
  {id: 'default.allow-read', action: 'allow', reason: 'reads are allowed', test: (op) => op.class === 'read'},
  {id: 'default.allow-write', action: 'allow', reason: 'inserts, filtered updates and deletes, new large objects and next sequence values are allowed', test: (op) => op.class === 'write'},
  {id: 'default.allow-transaction', action: 'allow', reason: 'transaction control is allowed', test: (op) => op.class === 'transaction'},
  {id: 'default.allow-session', action: 'allow', reason: 'ordinary session settings are allowed', test: (op) => op.class === 'session'},
]
