/**
 * What a held statement means depends on the database's objects as much as on its text: the body of
 * the function it calls, which overload of `lower` wins for a varchar column, which table is called
 * `orders`, what a view selects, the triggers and policies its write fires. A reviewer approves the
 * statement as it reads against those objects when it was held. Someone connected to the database
 * without dbgate (a migration tool, a psql of their own, a cron job) can change them while it waits,
 * and no pipeline hears of it; so the tunnel reads the objects when it files the request, reads them
 * again once the decision is verified, and sends the statement only if nothing it may reach moved
 * (objectsMoved).
 *
 * On a busy database something is always being replaced somewhere, so the comparison is narrowed to
 * what the statement can reach (reach): a name is only resolved at run time from a text (the
 * statement, a function body in SQL or PL/pgSQL), and everything else refers by OID, recorded in
 * pg_depend. So the reach starts at the objects named as a word of the text, and follows the parts of
 * each (columns, defaults, constraints, triggers, rules, policies, children), what each depends on,
 * the words of each function body, and the owner of each part, over both reads. Where a name can be
 * made at run time (dynamic SQL, a text cast to regclass, a function in another language, a builtin
 * that runs a query given as text) the reach cannot be known, and the whole database is compared.
 * Kinds resolved by no name a text spells (operators, casts, collations, operator classes, text search
 * configurations, foreign servers, event triggers, schemas, languages) and the builtin objects are
 * compared everywhere. Left out of the read altogether: other sessions' temporary objects (no other
 * session can name them; the held session's own are read in the session, see gate.ts), indexes,
 * privileges on tables and schemas, and what VACUUM and ANALYZE rewrite (sizes, statistics, freeze
 * horizons, the relhas* flags they clear lazily, the relation's file).
 */

/** Namespaces of temporary objects: one pg_temp_N and pg_toast_temp_N per backend that made one. */
const TEMP = `ARRAY(SELECT n.oid FROM pg_catalog.pg_namespace n WHERE n.nspname::pg_catalog.text OPERATOR(pg_catalog.~) '^pg_(toast_)?temp_')`
/** Relations that count: not temporary, not indexes, not TOAST tables (no statement names one, and nothing but the server changes one). */
const RELS = `ARRAY(SELECT c.oid FROM pg_catalog.pg_class c WHERE c.relpersistence OPERATOR(pg_catalog.<>) 't' AND c.relkind OPERATOR(pg_catalog.<>) ALL ('{i,I,t}'::pg_catalog."char"[]))`

/**
 * A relation's columns, every field of each, in its own definition: on a catalog of thousands of
 * tables a row per column was most of the read, and a column only counts where its relation does.
 */
const COLUMNS = `(SELECT pg_catalog.string_agg(pg_catalog.md5(a::pg_catalog.text), ' ' ORDER BY a.attnum) FROM pg_catalog.pg_attribute a WHERE a.attrelid OPERATOR(pg_catalog.=) c.oid AND a.attnum OPERATOR(pg_catalog.>) 0)`

/** The MD5 of a catalog row as text, every column of it (a row as text costs far less to make than as jsonb). */
const md5 = (alias: string) => `pg_catalog.md5(${alias}::pg_catalog.text)`

/**
 * One row per object: `k` (catalog and key), `rel` (the object it is a part of, '0' for none), `name`
 * (the name another object of its kind could take its place under; null for parts), `kind` (which
 * names it competes with), `what` (how a person names it) and `h` (its definition's MD5); OBJECTS_SQL
 * adds `src` and `opaque` (EXTRAS) and `refs` (EDGES, space-separated). System catalogs only, every
 * name and operator schema-qualified (the tunnel's role may have a search_path of its own), nothing
 * that takes a lock on a user's table.
 */
const OBJECTS = [
  `SELECT 'pg_namespace:' OPERATOR(pg_catalog.||) n.oid AS k, '0' AS rel, n.nspname::pg_catalog.text AS name, 'schema' AS kind, 'schema ' OPERATOR(pg_catalog.||) n.nspname AS what, pg_catalog.md5(pg_catalog.concat_ws(' ', n.nspname, n.nspowner)) AS h FROM pg_catalog.pg_namespace n WHERE n.oid OPERATOR(pg_catalog.<>) ALL (${TEMP})`,
  `SELECT 'pg_class:' OPERATOR(pg_catalog.||) c.oid, '0', c.relname::pg_catalog.text, 'relation', 'relation ' OPERATOR(pg_catalog.||) c.oid::pg_catalog.regclass::pg_catalog.text, pg_catalog.md5(pg_catalog.concat_ws(' ', c.relname, c.relnamespace, c.reltype, c.reloftype, c.relowner, c.relkind, c.relpersistence, c.relrowsecurity, c.relforcerowsecurity, c.relispartition, c.reloptions, c.relpartbound, ${COLUMNS})) FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) ANY (${RELS})`,
  `SELECT 'pg_attrdef:' OPERATOR(pg_catalog.||) d.oid, 'pg_class:' OPERATOR(pg_catalog.||) d.adrelid, NULL, NULL, 'a column default of ' OPERATOR(pg_catalog.||) d.adrelid::pg_catalog.regclass::pg_catalog.text, ${md5('d')} FROM pg_catalog.pg_attrdef d WHERE d.adrelid OPERATOR(pg_catalog.=) ANY (${RELS})`,
  `SELECT 'pg_constraint:' OPERATOR(pg_catalog.||) k.oid, CASE WHEN k.conrelid OPERATOR(pg_catalog.<>) 0 THEN 'pg_class:' OPERATOR(pg_catalog.||) k.conrelid WHEN k.contypid OPERATOR(pg_catalog.<>) 0 THEN 'pg_type:' OPERATOR(pg_catalog.||) k.contypid ELSE '0' END, NULL, NULL, 'constraint ' OPERATOR(pg_catalog.||) k.conname, ${md5('k')} FROM pg_catalog.pg_constraint k WHERE k.connamespace OPERATOR(pg_catalog.<>) ALL (${TEMP})`,
  `SELECT 'pg_inherits:' OPERATOR(pg_catalog.||) i.inhrelid OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) i.inhseqno, 'pg_class:' OPERATOR(pg_catalog.||) i.inhparent, NULL, NULL, 'a child of ' OPERATOR(pg_catalog.||) i.inhparent::pg_catalog.regclass::pg_catalog.text, ${md5('i')} FROM pg_catalog.pg_inherits i WHERE i.inhparent OPERATOR(pg_catalog.=) ANY (${RELS})`,
  `SELECT 'pg_trigger:' OPERATOR(pg_catalog.||) t.oid, 'pg_class:' OPERATOR(pg_catalog.||) t.tgrelid, NULL, NULL, 'trigger ' OPERATOR(pg_catalog.||) t.tgname OPERATOR(pg_catalog.||) ' on ' OPERATOR(pg_catalog.||) t.tgrelid::pg_catalog.regclass::pg_catalog.text, ${md5('t')} FROM pg_catalog.pg_trigger t WHERE t.tgrelid OPERATOR(pg_catalog.=) ANY (${RELS})`,
  `SELECT 'pg_policy:' OPERATOR(pg_catalog.||) o.oid, 'pg_class:' OPERATOR(pg_catalog.||) o.polrelid, NULL, NULL, 'policy ' OPERATOR(pg_catalog.||) o.polname OPERATOR(pg_catalog.||) ' on ' OPERATOR(pg_catalog.||) o.polrelid::pg_catalog.regclass::pg_catalog.text, ${md5('o')} FROM pg_catalog.pg_policy o WHERE o.polrelid OPERATOR(pg_catalog.=) ANY (${RELS})`,
  `SELECT 'pg_rewrite:' OPERATOR(pg_catalog.||) r.oid, 'pg_class:' OPERATOR(pg_catalog.||) r.ev_class, NULL, NULL, 'rule ' OPERATOR(pg_catalog.||) r.rulename OPERATOR(pg_catalog.||) ' on ' OPERATOR(pg_catalog.||) r.ev_class::pg_catalog.regclass::pg_catalog.text, ${md5('r')} FROM pg_catalog.pg_rewrite r WHERE r.ev_class OPERATOR(pg_catalog.=) ANY (${RELS})`,
  `SELECT 'pg_proc:' OPERATOR(pg_catalog.||) p.oid, '0', p.proname::pg_catalog.text, 'function', 'function ' OPERATOR(pg_catalog.||) p.pronamespace::pg_catalog.regnamespace::pg_catalog.text OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) p.proname, ${md5('p')} FROM pg_catalog.pg_proc p WHERE p.pronamespace OPERATOR(pg_catalog.<>) ALL (${TEMP})`,
  `SELECT 'pg_aggregate:' OPERATOR(pg_catalog.||) g.aggfnoid::pg_catalog.oid, 'pg_proc:' OPERATOR(pg_catalog.||) g.aggfnoid::pg_catalog.oid, NULL, NULL, 'aggregate ' OPERATOR(pg_catalog.||) g.aggfnoid::pg_catalog.regproc::pg_catalog.text, ${md5('g')} FROM pg_catalog.pg_aggregate g`,
  `SELECT 'pg_operator:' OPERATOR(pg_catalog.||) op.oid, '0', op.oprname::pg_catalog.text, 'operator', 'operator ' OPERATOR(pg_catalog.||) op.oprnamespace::pg_catalog.regnamespace::pg_catalog.text OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) op.oprname, ${md5('op')} FROM pg_catalog.pg_operator op WHERE op.oprnamespace OPERATOR(pg_catalog.<>) ALL (${TEMP})`,
  `SELECT 'pg_cast:' OPERATOR(pg_catalog.||) ca.oid, '0', NULL, NULL, 'cast from ' OPERATOR(pg_catalog.||) ca.castsource::pg_catalog.regtype::pg_catalog.text OPERATOR(pg_catalog.||) ' to ' OPERATOR(pg_catalog.||) ca.casttarget::pg_catalog.regtype::pg_catalog.text, ${md5('ca')} FROM pg_catalog.pg_cast ca`,
  `SELECT 'pg_type:' OPERATOR(pg_catalog.||) ty.oid, CASE WHEN ty.typrelid OPERATOR(pg_catalog.<>) 0 THEN 'pg_class:' OPERATOR(pg_catalog.||) ty.typrelid ELSE '0' END, ty.typname::pg_catalog.text, 'type', 'type ' OPERATOR(pg_catalog.||) ty.typnamespace::pg_catalog.regnamespace::pg_catalog.text OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) ty.typname, ${md5('ty')} FROM pg_catalog.pg_type ty WHERE ty.typnamespace OPERATOR(pg_catalog.<>) ALL (${TEMP})`,
  `SELECT 'pg_enum:' OPERATOR(pg_catalog.||) en.oid, 'pg_type:' OPERATOR(pg_catalog.||) en.enumtypid, NULL, NULL, 'a label of ' OPERATOR(pg_catalog.||) en.enumtypid::pg_catalog.regtype::pg_catalog.text, ${md5('en')} FROM pg_catalog.pg_enum en`,
  `SELECT 'pg_sequence:' OPERATOR(pg_catalog.||) sq.seqrelid, 'pg_class:' OPERATOR(pg_catalog.||) sq.seqrelid, NULL, NULL, 'sequence ' OPERATOR(pg_catalog.||) sq.seqrelid::pg_catalog.regclass::pg_catalog.text, ${md5('sq')} FROM pg_catalog.pg_sequence sq WHERE sq.seqrelid OPERATOR(pg_catalog.=) ANY (${RELS})`,
  `SELECT 'pg_collation:' OPERATOR(pg_catalog.||) co.oid, '0', co.collname::pg_catalog.text, 'collation', 'collation ' OPERATOR(pg_catalog.||) co.collname, ${md5('co')} FROM pg_catalog.pg_collation co`,
  `SELECT 'pg_opclass:' OPERATOR(pg_catalog.||) oc.oid, '0', oc.opcname::pg_catalog.text, 'opclass', 'operator class ' OPERATOR(pg_catalog.||) oc.opcname, ${md5('oc')} FROM pg_catalog.pg_opclass oc`,
  `SELECT 'pg_ts_config:' OPERATOR(pg_catalog.||) tc.oid, '0', tc.cfgname::pg_catalog.text, 'tsconfig', 'text search configuration ' OPERATOR(pg_catalog.||) tc.cfgname, ${md5('tc')} FROM pg_catalog.pg_ts_config tc`,
  `SELECT 'pg_foreign_server:' OPERATOR(pg_catalog.||) fs.oid, '0', fs.srvname::pg_catalog.text, 'server', 'foreign server ' OPERATOR(pg_catalog.||) fs.srvname, ${md5('fs')} FROM pg_catalog.pg_foreign_server fs`,
  `SELECT 'pg_foreign_table:' OPERATOR(pg_catalog.||) ft.ftrelid, 'pg_class:' OPERATOR(pg_catalog.||) ft.ftrelid, NULL, NULL, 'foreign table ' OPERATOR(pg_catalog.||) ft.ftrelid::pg_catalog.regclass::pg_catalog.text, ${md5('ft')} FROM pg_catalog.pg_foreign_table ft WHERE ft.ftrelid OPERATOR(pg_catalog.=) ANY (${RELS})`,
  `SELECT 'pg_event_trigger:' OPERATOR(pg_catalog.||) e.oid, '0', NULL, NULL, 'event trigger ' OPERATOR(pg_catalog.||) e.evtname, ${md5('e')} FROM pg_catalog.pg_event_trigger e`,
  `SELECT 'pg_language:' OPERATOR(pg_catalog.||) l.oid, '0', l.lanname::pg_catalog.text, 'language', 'language ' OPERATOR(pg_catalog.||) l.lanname, ${md5('l')} FROM pg_catalog.pg_language l`,
]

/** The first OID initdb does not hand out: objects below it are the builtin ones. */
const FIRST_NORMAL_OID = 16384
/**
 * Types whose input resolves the name of a relation, function or type at run time (`'pay' || 'roll'`
 * cast to regclass, implicitly too); the other reg* types name kinds compared everywhere.
 */
const REG_TYPES = `ARRAY(SELECT t.oid FROM pg_catalog.pg_type t WHERE t.typnamespace OPERATOR(pg_catalog.=) 'pg_catalog'::pg_catalog.regnamespace AND t.typname OPERATOR(pg_catalog.=) ANY ('{regclass,regproc,regprocedure,regtype}'::pg_catalog.name[]))`

/**
 * For functions, types and languages: `src`, the body a name is resolved from when it runs (SQL and
 * PL/pgSQL functions of the database's own), and `opaque`, set where a name can be made at run time
 * (another language, an argument of a reg* type, a builtin that runs a query given as text or looks a name up in one).
 */
const EXTRAS = [
  `SELECT 'pg_proc:' OPERATOR(pg_catalog.||) p.oid AS k, CASE WHEN p.oid OPERATOR(pg_catalog.>=) ${FIRST_NORMAL_OID}::pg_catalog.oid AND l.lanname OPERATOR(pg_catalog.=) ANY ('{sql,plpgsql}'::pg_catalog.name[]) THEN p.prosrc END AS src,
   CASE WHEN (p.oid OPERATOR(pg_catalog.>=) ${FIRST_NORMAL_OID}::pg_catalog.oid AND l.lanname OPERATOR(pg_catalog.<>) ALL ('{sql,plpgsql}'::pg_catalog.name[]))
     OR p.proargtypes::pg_catalog.oid[] OPERATOR(pg_catalog.&&) ${REG_TYPES}
     OR (p.oid OPERATOR(pg_catalog.<) ${FIRST_NORMAL_OID}::pg_catalog.oid AND p.proname::pg_catalog.text OPERATOR(pg_catalog.~) '^((query|cursor|table|schema|database)_to_xml|ts_(stat|rewrite)$|to_reg(class|proc|procedure|type|typemod)$|has_(table|sequence|column|any_column|function)_privilege$|pg_get_serial_sequence$)') THEN '1' END AS opaque
   FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_language l ON l.oid OPERATOR(pg_catalog.=) p.prolang WHERE p.pronamespace OPERATOR(pg_catalog.<>) ALL (${TEMP})`,
  `SELECT 'pg_type:' OPERATOR(pg_catalog.||) t.oid, NULL, '1' FROM pg_catalog.pg_type t WHERE t.oid OPERATOR(pg_catalog.=) ANY (${REG_TYPES})`,
  `SELECT 'pg_language:' OPERATOR(pg_catalog.||) l.oid, NULL, '1' FROM pg_catalog.pg_language l WHERE l.lanname OPERATOR(pg_catalog.<>) ALL ('{sql,plpgsql,internal,c}'::pg_catalog.name[])`,
].join('\nUNION ALL ')

/**
 * What refers to what by OID: pg_depend's records for the database's own objects (a column on its
 * type, a view's rule and a default on what they read and call, a trigger on its function, a
 * foreign key's trigger on its constraint, a function on its types, an operator or a cast on its
 * function), a table to its children (a statement on a parent reads and writes them too), and an
 * operator class to the functions and operators of its family. Keys as the objects' `k`.
 */
const EDGES = [
  `SELECT cl.relname::pg_catalog.text OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) d.objid AS k, rc.relname::pg_catalog.text OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) d.refobjid AS ref
   FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_class cl ON cl.oid OPERATOR(pg_catalog.=) d.classid JOIN pg_catalog.pg_class rc ON rc.oid OPERATOR(pg_catalog.=) d.refclassid
   WHERE d.objid OPERATOR(pg_catalog.>=) ${FIRST_NORMAL_OID}::pg_catalog.oid AND d.deptype OPERATOR(pg_catalog.<>) 'e'`,
  `SELECT 'pg_class:' OPERATOR(pg_catalog.||) i.inhparent, 'pg_class:' OPERATOR(pg_catalog.||) i.inhrelid FROM pg_catalog.pg_inherits i`,
  `SELECT 'pg_opclass:' OPERATOR(pg_catalog.||) oc.oid, 'pg_proc:' OPERATOR(pg_catalog.||) ap.amproc::pg_catalog.oid FROM pg_catalog.pg_opclass oc JOIN pg_catalog.pg_amproc ap ON ap.amprocfamily OPERATOR(pg_catalog.=) oc.opcfamily WHERE oc.oid OPERATOR(pg_catalog.>=) ${FIRST_NORMAL_OID}::pg_catalog.oid`,
  `SELECT 'pg_opclass:' OPERATOR(pg_catalog.||) oc.oid, 'pg_operator:' OPERATOR(pg_catalog.||) ao.amopopr FROM pg_catalog.pg_opclass oc JOIN pg_catalog.pg_amop ao ON ao.amopfamily OPERATOR(pg_catalog.=) oc.opcfamily WHERE oc.oid OPERATOR(pg_catalog.>=) ${FIRST_NORMAL_OID}::pg_catalog.oid`,
].join('\nUNION ALL ')

export const OBJECTS_SQL = `WITH o AS (
${OBJECTS.join('\nUNION ALL ')}
), x AS (${EXTRAS}), e AS (${EDGES})
SELECT o.k, o.rel, o.name, o.kind, o.what, o.h, x.src, x.opaque, r.refs FROM o
LEFT JOIN x ON x.k OPERATOR(pg_catalog.=) o.k
LEFT JOIN (SELECT e.k, pg_catalog.string_agg(e.ref, ' ') AS refs FROM e GROUP BY e.k) r ON r.k OPERATOR(pg_catalog.=) o.k`

export interface DatabaseObject {
  k: string
  rel: string
  name: string | null
  kind: string | null
  what: string
  h: string
  /** The body a name is resolved from when it runs. */
  src: string | null
  /** A name can be made at run time: what it reaches cannot be known. */
  opaque: boolean
  /** The objects it refers to by OID (and a table's children). */
  refs: readonly string[]
}

/** OBJECTS_SQL's answer, checked: a row of another shape is an error, never a match. */
export function databaseObjects(answer: readonly Record<string, unknown>[]): Map<string, DatabaseObject> {
  const out = new Map<string, DatabaseObject>()
  for (const r of answer) {
    const str = (v: unknown) => (typeof v === 'string' ? v : undefined)
    const [k, rel, what, h] = [str(r.k), str(r.rel), str(r.what), str(r.h)]
    const shaped = (v: unknown) => v === null || v === undefined || typeof v === 'string'
    if (k === undefined || rel === undefined || what === undefined || h === undefined || !shaped(r.src) || !shaped(r.opaque) || !shaped(r.refs)) {
      throw new Error('the catalog answered the read of its objects with a row of another shape')
    }
    out.set(k, {k, rel, name: str(r.name) ?? null, kind: str(r.kind) ?? null, what, h, src: str(r.src) ?? null, opaque: str(r.opaque) === '1', refs: str(r.refs)?.split(' ') ?? []})
  }
  if (out.size === 0) throw new Error('the catalog answered the read of its objects with no rows')
  return out
}

/** Kinds a text resolves by name, compared only where the statement reaches them; every other kind is compared everywhere. */
const NARROWED = new Set(['function', 'relation', 'type'])

/** An object initdb made (its OID, or its relation's, below the first normal one): it is compared everywhere. */
function builtin(k: string): boolean {
  const oid = Number(/:(\d+)/.exec(k)?.[1])
  return Number.isFinite(oid) && oid < FIRST_NORMAL_OID
}

/**
 * What the statement of `texts` can reach, over both reads (one object's later
 * definition may reach what its earlier one did not): `keys` and the `words` of the texts and the
 * bodies reached, or undefined where a name can be made at run time (an opaque function, type or
 * language named or reached, or `execute`, PL/pgSQL's and SQL's dynamic statement, among the words).
 */
export function reach(before: ReadonlyMap<string, DatabaseObject>, after: ReadonlyMap<string, DatabaseObject>, texts: readonly string[]): {keys: Set<string>; words: Set<string>} | undefined {
  const versions = (k: string) => [before.get(k), after.get(k)].filter((o): o is DatabaseObject => o !== undefined)
  const byName = new Map<string, string[]>()
  const parts = new Map<string, string[]>()
  for (const objects of [before, after]) {
    for (const o of objects.values()) {
      const add = (m: Map<string, string[]>, key: string) => (m.get(key) ?? m.set(key, []).get(key)!).push(o.k)
      if (o.name !== null) add(byName, o.name.toLowerCase())
      if (o.rel !== '0') add(parts, o.rel)
    }
  }
  const keys = new Set<string>()
  const seen = new Set<string>()
  const queue: string[] = []
  const visit = (k: string) => {
    if (!keys.has(k) && (before.has(k) || after.has(k))) {
      keys.add(k)
      queue.push(k)
    }
  }
  const named = (word: string): boolean => {
    if (seen.has(word)) return true
    seen.add(word)
    if (word === 'execute') return false
    for (const k of byName.get(word) ?? []) {
      const vs = versions(k)
      if (vs.some((o) => o.opaque)) return false
      if (vs.some((o) => o.kind !== null && NARROWED.has(o.kind))) visit(k)
    }
    return true
  }
  // A name that is no word (`"orders-2026"`, `"my table"`) is looked for in the texts as it is.
  const odd = [...byName.keys()].filter((n) => !PLAIN.test(n))
  /** Reaches what a text names; false where it spells a name in escapes (`U&"p\\0061yroll"`), which no word or search finds. */
  const read = (text: string): boolean => {
    if (/u&"/i.test(text)) return false
    for (const w of wordsOf([text])) if (!named(w)) return false
    const lower = text.toLowerCase()
    for (const n of odd) if (lower.includes(n) && !named(n)) return false
    return true
  }
  /** Follows what was visited; `strict`, a name made at run time makes the reach unknown. */
  const walk = (strict: boolean): boolean => {
    while (queue.length > 0) {
      const k = queue.pop()!
      for (const o of versions(k)) {
        if (o.opaque && strict) return false
        if (o.rel !== '0') visit(o.rel)
        for (const r of o.refs) visit(r)
        if (o.src !== null && !read(o.src)) return false
      }
      for (const p of parts.get(k) ?? []) visit(p)
    }
    return true
  }
  for (const t of texts) if (!read(t)) return undefined
  if (!walk(true)) return undefined
  // The database's own operators, casts, operator classes and event triggers run without a name in
  // any text (`a === b`, an implicit cast, an ORDER BY, any DDL), and are compared everywhere: the
  // functions they run count everywhere too, and what those reach. An extension's operator in C is
  // no sign that a text makes names, so it leaves the reach known.
  for (const objects of [before, after]) for (const o of objects.values()) if (o.rel === '0' && !builtin(o.k) && (o.kind === null || !(NARROWED.has(o.kind) || o.kind === 'schema' || o.kind === 'language'))) visit(o.k)
  if (!walk(false)) return undefined
  return {keys, words: seen}
}

/** How many changed objects a refusal names. */
const NAMED = 3

/**
 * The objects that moved between `before` (when the statement was held) and `after` (once it was
 * approved), as a person names them, or [] when none that may change the statement whose `texts`
 * (its own and the prepared statements it executes) were reviewed did. Where the
 * statement's reach is known (reach), an object of a kind a text resolves by name counts only
 * inside it: one whose definition changed; a part made or dropped of an object reached there both
 * times (a trigger, a policy, a rule, a column default, a constraint, a child of a table); one made
 * or dropped under a name the texts and bodies reached use (an overload, a table of the same name
 * earlier on the search_path). Every other kind, and a builtin object, counts anywhere: changed, made
 * or dropped where it belongs to an object there both times, or under a name its kind already has
 * (an operator's overload); a cast, an event trigger or a schema made or dropped. Where the reach is
 * not known, every kind counts anywhere as the others do.
 */
export function objectsMoved(before: ReadonlyMap<string, DatabaseObject>, after: ReadonlyMap<string, DatabaseObject>, texts: readonly string[]): string[] {
  const within = reach(before, after, texts)
  const lower = texts.map((t) => t.toLowerCase())
  const words = wordsOf(texts)
  for (const objects of [before, after]) for (const o of objects.values()) if (o.name !== null && !PLAIN.test(o.name) && lower.some((t) => t.includes(o.name!.toLowerCase()))) words.add(o.name.toLowerCase())
  const narrowed = (o: DatabaseObject): boolean => within !== undefined && !builtin(o.k) && (o.rel !== '0' ? !builtin(o.rel) : o.kind !== null && NARROWED.has(o.kind))
  const uses = within?.words ?? words
  const moved: string[] = []
  for (const [k, o] of before) {
    const now = after.get(k)
    if (now && now.h !== o.h && (!narrowed(now) || within!.keys.has(k))) moved.push(now.what)
  }
  /** An object made (or dropped) where something may now resolve otherwise; `names` are those of its rivals. */
  const counts = (o: DatabaseObject, names: ReadonlySet<string>): boolean => {
    // Part of an object made or dropped with it: that object is judged by its own name.
    if (o.rel !== '0') return before.has(o.rel) && after.has(o.rel) && (!narrowed(o) || within!.keys.has(o.rel))
    if (o.name === null || o.kind === null || o.kind === 'schema') return true
    const name = o.name.toLowerCase()
    return uses.has(name) || (!narrowed(o) && names.has(`${o.kind}:${name}`))
  }
  const namesOf = (objects: ReadonlyMap<string, DatabaseObject>) => new Set([...objects.values()].flatMap((o) => (o.name !== null && o.kind !== null ? [`${o.kind}:${o.name.toLowerCase()}`] : [])))
  // A new object rivals the names that were there; a dropped one, the names still there.
  const [namesBefore, namesAfter] = [namesOf(before), namesOf(after)]
  for (const [k, o] of after) if (!before.has(k) && counts(o, namesBefore)) moved.push(`${o.what} (new)`)
  for (const [k, o] of before) if (!after.has(k) && counts(o, namesAfter)) moved.push(`${o.what} (dropped)`)
  return moved.length > NAMED ? [...moved.slice(0, NAMED), `${moved.length - NAMED} more`] : moved
}

/** A name a word of a text can be. */
const PLAIN = /^[\p{L}_][\p{L}\p{N}_$]*$/u

/** The names a text uses, lower-cased, generously: every word, in strings and comments too (a regclass literal names a table). */
export function wordsOf(texts: readonly string[]): Set<string> {
  const out = new Set<string>()
  for (const t of texts) for (const w of t.matchAll(/[\p{L}_][\p{L}\p{N}_$]*/gu)) out.add(w[0].toLowerCase())
  return out
}
