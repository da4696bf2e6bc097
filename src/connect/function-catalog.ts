/**
 * The tunnel's view of what the target's functions, operators and casts do, read from its catalog
 * through the tunnel's catalog connection (the one masking reads through) when a name is first
 * seen, and kept per target. Policy judges with it (src/policy/catalog.ts); this module only
 * reads and remembers.
 *
 * - A name is looked up once; concurrent misses share one lookup, and one statement's misses go in
 *   one query per kind.
 * - Answers are re-read after `ttlMs` (a function replaced outside the tunnel is seen within that
 *   time), answers of "nothing by that name" after `absentTtlMs`, and everything after DDL that
 *   went through the tunnel (`invalidate`).
 * - A lookup that fails leaves the name unknown: the statement that needed it is refused (fail
 *   closed) and the next one tries again.
 */
import type {CatalogQuery, Row} from '../masking/catalog.js'
import {builtinCandidates} from '../policy/builtins.js'
import type {CatalogKey, LoadingFunctionCatalog} from '../policy/catalog.js'
import {readFunctionBody, readRuleBody, type FunctionBody} from '../policy/function-body.js'
import {isBuiltinSchema, type FunctionCandidate} from '../policy/functions.js'
import {LIBRARY_SETTINGS_KEY} from '../policy/settings.js'
import type {Volatility} from '../policy/builtins.js'
import {loadParser} from '../sql/parser.js'
import {runsCodeOnWrite} from '../sql/runs-code.js'
import {BEYOND_DEPTH_KIND, bodyKey, EVENT_TRIGGERS_KEY, PARTITION_KEY_VIA, VIEW_DEPTH_LIMIT, WRITE_RULE_KIND, type TableBehind, type ViewAwareCatalog} from '../policy/views.js'

/**
 * The types a value of type `b` (a pg_type row) is converted through, as `x(oid)`: a domain's base
 * type, a composite's attribute types, an array's element type, a range's subtype (range_in reads
 * each bound as one: `'[1,5)'::r` runs the checks of a domain it is over), a multirange's range
 * type, and the types a domain's checks convert its value into. Their checks run on the way. (pg_range.rngmultitypid is read through to_jsonb: servers
 * before PostgreSQL 14 have no multiranges, nor the column.)
 */
const TYPE_PARTS = `cross join lateral (
          select b.typbasetype as oid where b.typbasetype <> 0
          union all
          select a.atttypid from pg_attribute a where b.typrelid <> 0 and a.attrelid = b.typrelid and a.attnum > 0 and not a.attisdropped
          union all
          select b.typelem where b.typelem <> 0 and b.typcategory = 'A'
          union all
          select rg.rngsubtype from pg_range rg where rg.rngtypid = b.oid
          union all
          select rg.rngtypid from pg_range rg where b.typtype = 'm' and (to_jsonb(rg) ->> 'rngmultitypid')::oid = b.oid
          union all
          -- A domain's check that converts its value into another domain runs that one's checks too.
          select cr[1]::oid from pg_constraint k cross join lateral regexp_matches(k.conbin::text, ':resulttype ([0-9]+)', 'g') cr
          where k.contypid = b.oid and b.typtype = 'd'
        ) x`

/**
 * The types the columns of the relation `rel` (an expression giving its OID) hold values of, and
 * every type a value written to them is converted through (TYPE_PARTS): a column of a domain over a
 * domain, of an array of a domain, of a composite or a range whose parts are one, runs that
 * domain's checks on every write, as a column of the domain itself does.
 */
function columnTypesSql(rel: string): string {
  return `with recursive chain(oid) as (
          select at.atttypid from pg_attribute at where at.attrelid = ${rel} and at.attnum > 0 and not at.attisdropped
          union
          select x.oid from chain c join pg_type b on b.oid = c.oid
          ${TYPE_PARTS}
        ) select oid from chain`
}

/**
 * The functions a range type `type` (an expression giving a pg_type OID) runs besides its input:
 * its canonical function and its subtype's operator class (run on every range built, to order the
 * bounds), and its subtype_diff (run by GiST indexes on every row written, and by the planner on
 * every read whose condition compares such a column with a constant: `diff`, for writes and reads
 * of a relation with such a column). A plain `select … where r && '[1,5)'` runs a subtype_diff
 * written in PL/pgSQL.
 */
function rangeSupportSql(type: string, diff: boolean): string {
  return `select rg.rngcanonical::oid as fid from pg_range rg where rg.rngtypid = ${type} and rg.rngcanonical::oid <> 0
          union all${diff ? `
          select rg.rngsubdiff::oid from pg_range rg where rg.rngtypid = ${type} and rg.rngsubdiff::oid <> 0
          union all` : ''}
          select ap.amproc::oid from pg_range rg join pg_opclass opc on opc.oid = rg.rngsubopc join pg_amproc ap on ap.amprocfamily = opc.opcfamily
          where rg.rngtypid = ${type}`
}

/**
 * The functions the domain checks run that a stored expression tree (`tree`, text) converts into:
 * a node converting to a domain (`x::wiping_int` in a default, a generated column, a check, an index
 * expression, a view) names the domain as its `:resulttype`, and its checks (and those of the
 * types it is made of: TYPE_PARTS) run on every value converted. pg_depend records the domain, not
 * the functions, so a walk of dependencies on functions misses them.
 */
function domainCoercionsSql(tree: string): string {
  return `with recursive chain(oid) as (
          select distinct rt[1]::oid from regexp_matches(${tree}, ':resulttype ([0-9]+)', 'g') rt
          join pg_type dt on dt.oid = rt[1]::oid and dt.typtype = 'd'
          union
          select x.oid from chain c join pg_type b on b.oid = c.oid
          ${TYPE_PARTS}
        )
        select cm[1]::oid as fid
        from chain join pg_constraint dcon on dcon.contypid = chain.oid
        cross join lateral regexp_matches(dcon.conbin::text, ':(?:funcid|opfuncid) ([0-9]+)', 'g') cm`
}

/** The stored trees (as text) of the check constraints and index expressions and predicates of the relation `rel`. */
function storedExpressionsSql(rel: string): string {
  return `select co.conbin::text as tree from pg_constraint co where co.conrelid = ${rel} and co.conbin is not null
          union all
          select coalesce(ix.indexprs::text, '') || ' ' || coalesce(ix.indpred::text, '') from pg_index ix where ix.indrelid = ${rel}`
}

/** The relation `rel` and the tables it is a partition or an inheritance child of, up to the top. */
function ancestorsSql(rel: string): string {
  return `with recursive up(oid) as (
          select ${rel}
          union
          select i.inhparent from up join pg_inherits i on i.inhrelid = up.oid
        ) select oid from up`
}

/**
 * The domains whose default a write to the relation `rel` may evaluate: a column's own type and the
 * domains it is based on (a domain made over another takes its default). An INSERT that leaves out
 * a column without a default of its own (or writes DEFAULT) evaluates its domain's.
 */
function columnDomainsSql(rel: string): string {
  return `with recursive chain(oid) as (
          select at.atttypid from pg_attribute at where at.attrelid = ${rel} and at.attnum > 0 and not at.attisdropped
          union
          select b.typbasetype from chain c join pg_type b on b.oid = c.oid where b.typbasetype <> 0
        ) select oid from chain`
}

export interface TargetFunctionCatalogOptions {
  query: CatalogQuery
  ttlMs?: number
  absentTtlMs?: number
  now?: () => number
}

interface Entry {
  candidates: FunctionCandidate[]
  at: number
}

/** A text literal that reads the same whatever the connection's settings: hex-encoded UTF-8. */
function literal(text: string): string {
  return `convert_from(decode('${Buffer.from(text, 'utf8').toString('hex')}', 'hex'), 'UTF8')`
}

function textArray(items: readonly string[]): string {
  return items.length === 0 ? `array[]::text[]` : `array[${items.map(literal).join(', ')}]::text[]`
}

const CANDIDATE_COLUMNS = `schema, name, args, volatility, kind, nargs, ndefaults, "variadic", via, scope, key, oid`

/**
 * Joins `f` (pg_proc) and `fn` (its namespace) to every function a stored expression tree
 * (`tree`, a pg_node_tree column) calls: each function, operator, aggregate and window call in it
 * names its pg_proc OID. Read from the tree rather than pg_depend, which records no dependency on
 * PostgreSQL's own pinned functions (a view or a check calling nextval or set_config shows none).
 */
function calledBy(tree: string): string {
  return `cross join lateral regexp_matches(${tree}::text, ':(?:funcid|opfuncid|aggfnoid|winfnoid|hashfuncid|negfuncid) ([0-9]+)', 'g') m
    join pg_proc f on f.oid = m[1]::oid join pg_namespace fn on fn.oid = f.pronamespace`
}

/**
 * Functions, procedures and aggregates by name, in every schema. Built-ins the generated table
 * already knows are left out; an aggregate also stands for the functions it calls (its own
 * provolatile says nothing: CREATE AGGREGATE does not set it). A function also stands for what
 * the caller's query runs on its behalf: its argument defaults (a call that leaves an argument
 * out evaluates the default's expression) and the checks of domains its arguments are coerced to.
 */
function functionsSql(names: readonly string[], knownBuiltins: readonly string[]): string {
  return `
    select ${CANDIDATE_COLUMNS} from (
      select n.nspname::text as schema, p.proname::text as name,
             coalesce((select string_agg(format_type(t, null), ',' order by i)
                       from unnest(p.proargtypes::oid[]) with ordinality u(t, i)), '') as args,
             p.provolatile::text as volatility, p.prokind::text as kind, p.pronargs::int as nargs,
             p.pronargdefaults::int as ndefaults, p.provariadic <> 0 as "variadic",
             null::text as via, null::text as scope, p.proname::text as key, p.oid::int8 as oid
      from pg_proc p join pg_namespace n on n.oid = p.pronamespace
      where p.proname = any(${textArray(names)})
        and (n.nspname not in ('pg_catalog', 'information_schema') or p.proname <> all(${textArray(knownBuiltins)}))
      union all
      select sn.nspname::text, s.proname::text, '', s.provolatile::text, 'f', p.pronargs::int,
             p.pronargdefaults::int, p.provariadic <> 0,
             'aggregate ' || n.nspname || '.' || p.proname, n.nspname::text, p.proname::text, s.oid::int8
      from pg_proc p
      join pg_namespace n on n.oid = p.pronamespace
      join pg_aggregate a on a.aggfnoid = p.oid
      join pg_proc s on s.oid in (a.aggtransfn, a.aggfinalfn, a.aggcombinefn, a.aggserialfn, a.aggdeserialfn, a.aggmtransfn, a.aggminvtransfn, a.aggmfinalfn)
      join pg_namespace sn on sn.oid = s.pronamespace
      where p.proname = any(${textArray(names)}) and n.nspname not in ('pg_catalog', 'information_schema')
      union all
      select fn.nspname::text, f.proname::text, '', f.provolatile::text, 'f', p.pronargs::int,
             p.pronargdefaults::int, p.provariadic <> 0,
             'default argument of ' || n.nspname || '.' || p.proname, n.nspname::text, p.proname::text, f.oid::int8
      from pg_proc p
      join pg_namespace n on n.oid = p.pronamespace
      ${calledBy('p.proargdefaults')}
      where p.proname = any(${textArray(names)}) and n.nspname not in ('pg_catalog', 'information_schema') and p.proargdefaults is not null
      union all
      select fn.nspname::text, f.proname::text, '', f.provolatile::text, 'f', p.pronargs::int,
             p.pronargdefaults::int, p.provariadic <> 0,
             'a conversion to a domain in a default argument of ' || n.nspname || '.' || p.proname, n.nspname::text, p.proname::text, f.oid::int8
      from pg_proc p
      join pg_namespace n on n.oid = p.pronamespace
      cross join lateral (${domainCoercionsSql('p.proargdefaults::text')}) dc
      join pg_proc f on f.oid = dc.fid join pg_namespace fn on fn.oid = f.pronamespace
      where p.proname = any(${textArray(names)}) and n.nspname not in ('pg_catalog', 'information_schema') and p.proargdefaults is not null
      union all
      ${argumentEffectsSql(`
        select p.proargtypes::oid[] as types, p.pronargs::int as nargs, p.pronargdefaults::int as ndefaults, p.provariadic <> 0 as "variadic",
               n.nspname || '.' || p.proname as what, n.nspname::text as scope, p.proname::text as key
        from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        where p.proname = any(${textArray(names)})`)}
    ) c`
}

/**
 * What the caller's query runs to hand arguments to a function or operator (`owners`: a query of
 * types, nargs, ndefaults, variadic, what, scope, key), built-in ones included: the checks of the
 * domains its parameters are (or are based on, or hold as array elements or composite attributes),
 * and the implicit casts into its parameter types that are not built in (`abs(c)` runs a user's
 * implicit cast from c's type to integer).
 */
function argumentEffectsSql(owners: string): string {
  return `
    select fn.nspname::text, f.proname::text, '', f.provolatile::text, 'f', o.nargs, o.ndefaults, o."variadic",
           'check of domain ' || format_type(con.contypid, null) || ' (an argument of ' || o.what || ')', o.scope, o.key, f.oid::int8
    from (${owners}) o
    cross join lateral (
      -- A domain's base type; and, since an argument converted into a composite type (row(5) for
      -- a parameter of type comp) converts each field into its attribute's type, and into an array
      -- (a VARIADIC one too) each element into the element type, those types too.
      with recursive chain(oid) as (
        select t from unnest(o.types) u(t)
        union
        select x.oid
        from chain c join pg_type b on b.oid = c.oid
        ${TYPE_PARTS}
      ) select oid from chain
    ) arg
    join pg_constraint con on con.contypid = arg.oid
    ${calledBy('con.conbin')}
    union all
    select fn.nspname::text, f.proname::text, '', f.provolatile::text, 'f', o.nargs, o.ndefaults, o."variadic",
           'support function of the range ' || format_type(arg.oid, null) || ' (an argument of ' || o.what || ')', o.scope, o.key, f.oid::int8
    from (${owners}) o
    cross join lateral (
      with recursive chain(oid) as (
        select t from unnest(o.types) u(t)
        union
        select x.oid
        from chain c join pg_type b on b.oid = c.oid
        ${TYPE_PARTS}
      ) select oid from chain
    ) arg
    cross join lateral (${rangeSupportSql('arg.oid', false)}) rs
    join pg_proc f on f.oid = rs.fid join pg_namespace fn on fn.oid = f.pronamespace
    where fn.nspname <> 'pg_catalog'
    union all
    select fn.nspname::text, f.proname::text, '', f.provolatile::text, 'f', o.nargs, o.ndefaults, o."variadic",
           'implicit cast to ' || format_type(k.casttarget, null) || ' (an argument of ' || o.what || ')', o.scope, o.key, f.oid::int8
    from (${owners}) o
    join pg_cast k on k.casttarget = any(o.types) and k.castcontext = 'i' and k.castfunc <> 0
    join pg_proc f on f.oid = k.castfunc join pg_namespace fn on fn.oid = f.pronamespace
    where fn.nspname <> 'pg_catalog'`
}

/**
 * A relation of pg_catalog or one of information_schema's own, made by initdb (an ordinary schema: a
 * superuser's view there over hr.salaries is a user's relation, and its tables are behind it).
 */
function systemRelationSql(c: string): string {
  return `(${c}.relnamespace = 'pg_catalog'::regnamespace or (${c}.relnamespace = 'information_schema'::regnamespace and ${c}.oid < ${FIRST_NORMAL_OBJECT_ID}))`
}

function userRelation(c: string, n: string): string {
  return `${n}.nspname <> 'pg_catalog' and (${n}.nspname <> 'information_schema' or ${c}.oid >= ${FIRST_NORMAL_OBJECT_ID})`
}

/**
 * The functions views and rules call, for relations by name (not the system's own views),
 * following views built on views. A system relation reached from a user's view counts by its
 * rules other than its view definition: an update through a view of pg_settings fires
 * pg_settings' UPDATE rule, which calls set_config. A table with row-level security also runs
 * its policies' expressions for every row a statement reads or writes.
 * The functions come from the stored trees (`calledBy`).
 */
function relationsSql(names: readonly string[]): string {
  return `
    with recursive rels(oid, key, scope, depth, sys) as (
      select c.oid, c.relname::text, n.nspname::text, 0, false
      from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where c.relname = any(${textArray(names)}) and ${userRelation('c', 'n')}
      union
      select d.refobjid, r0.key, r0.scope, r0.depth + 1, ${systemRelationSql('c2')}
      from rels r0
      join pg_rewrite rw on rw.ev_class = r0.oid
      join pg_depend d on d.classid = 'pg_rewrite'::regclass and d.objid = rw.oid and d.refclassid = 'pg_class'::regclass and d.refobjid <> r0.oid
      join pg_class c2 on c2.oid = d.refobjid
      where r0.depth < 8 and not r0.sys
    )
    select distinct fn.nspname::text as schema, f.proname::text as name, '' as args, f.provolatile::text as volatility, f.prokind::text as kind,
           f.pronargs::int as nargs, 0 as ndefaults, false as "variadic",
           case when rw.rulename = '_RETURN' then 'view ' || rels.scope || '.' || rels.key
                else 'rule ' || rw.rulename || ' on ' || rn.nspname || '.' || rc.relname end as via,
           rels.scope as scope, rels.key as key, f.oid::int8 as oid
    from rels
    join pg_rewrite rw on rw.ev_class = rels.oid and (not rels.sys or rw.rulename <> '_RETURN')
    join pg_class rc on rc.oid = rw.ev_class join pg_namespace rn on rn.oid = rc.relnamespace
    ${calledBy("(rw.ev_action::text || ' ' || coalesce(rw.ev_qual::text, ''))")}
    union
    -- A rule's NOTIFY action is no function call in its tree, but does what pg_notify does.
    select 'pg_catalog', f.proname::text, '', f.provolatile::text, f.prokind::text, f.pronargs::int, 0, false,
           'NOTIFY in rule ' || rw.rulename || ' on ' || rn.nspname || '.' || rc.relname, rels.scope, rels.key, f.oid::int8
    from rels
    join pg_rewrite rw on rw.ev_class = rels.oid and (not rels.sys or rw.rulename <> '_RETURN')
    join pg_class rc on rc.oid = rw.ev_class join pg_namespace rn on rn.oid = rc.relnamespace
    join pg_proc f on f.oid = 'pg_catalog.pg_notify(text, text)'::regprocedure
    where rw.ev_action::text like '%{NOTIFYSTMT %'
    union
    select fn.nspname::text, f.proname::text, '', f.provolatile::text, f.prokind::text, f.pronargs::int, 0, false,
           'policy ' || pol.polname || ' on ' || rn.nspname || '.' || rc.relname, rels.scope, rels.key, f.oid::int8
    from rels
    join pg_class rc on rc.oid = rels.oid and rc.relrowsecurity and not rels.sys
    join pg_namespace rn on rn.oid = rc.relnamespace
    join pg_policy pol on pol.polrelid = rc.oid
    ${calledBy("(coalesce(pol.polqual::text, '') || ' ' || coalesce(pol.polwithcheck::text, ''))")}
    union
    -- A view's, rule's or policy's conversions to a domain run its checks (domainCoercionsSql).
    select fn.nspname::text, f.proname::text, '', f.provolatile::text, f.prokind::text, f.pronargs::int, 0, false,
           'a conversion to a domain in ' || tr.what || ' on ' || rn.nspname || '.' || rc.relname, rels.scope, rels.key, f.oid::int8
    from rels
    join pg_class rc on rc.oid = rels.oid
    join pg_namespace rn on rn.oid = rc.relnamespace
    cross join lateral (
      select 'the rule ' || rw.rulename as what, rw.ev_action::text || ' ' || coalesce(rw.ev_qual::text, '') as tree
      from pg_rewrite rw where rw.ev_class = rels.oid and (not rels.sys or rw.rulename <> '_RETURN')
      union all
      select 'the policy ' || pol.polname, coalesce(pol.polqual::text, '') || ' ' || coalesce(pol.polwithcheck::text, '')
      from pg_policy pol where pol.polrelid = rels.oid and rc.relrowsecurity and not rels.sys
    ) tr
    cross join lateral (${domainCoercionsSql('tr.tree')}) dc
    join pg_proc f on f.oid = dc.fid join pg_namespace fn on fn.oid = f.pronamespace
    union
    -- A read compares a range column with a constant: the planner runs the range's subtype_diff
    -- (and building the constant its canonical function and subtype operator class).
    select fn.nspname::text, f.proname::text, '', f.provolatile::text, f.prokind::text, f.pronargs::int, 0, false,
           'support function of the range ' || format_type(ct.oid, null) || ' in a column of ' || rn.nspname || '.' || rc.relname, rels.scope, rels.key, f.oid::int8
    from rels
    join pg_class rc on rc.oid = rels.oid and not rels.sys
    join pg_namespace rn on rn.oid = rc.relnamespace
    cross join lateral (${columnTypesSql('rels.oid')}) ct
    cross join lateral (${rangeSupportSql('ct.oid', true)}) rs
    join pg_proc f on f.oid = rs.fid join pg_namespace fn on fn.oid = f.pronamespace
    where fn.nspname <> 'pg_catalog'`
}

/** The first OID of objects created after initdb: below it, the system's own (pinned) relations. */
const FIRST_NORMAL_OBJECT_ID = 16384

/**
 * The relations behind views, materialized views, rules and partitioned or inherited tables, for
 * relations by name in user schemas (src/policy/views.ts adds them to what `tables:` rules
 * match): what each rule's stored tree depends on, and each table's partitions and inheritance
 * children (a partition of public.payroll may live in hr), following them to VIEW_DEPTH_LIMIT
 * levels; a relation with more behind it there comes back `too_deep`, and a foreign table (itself
 * too, when named) comes back `foreign`: its rows come from another server. System relations are
 * reported, not followed (pg_stats counts as every table by its name). `select_only`: reached
 * through view definitions and table hierarchies alone, which a read goes through; the other
 * rules fire only for writes. `cascade`: reached through a foreign key whose ON DELETE (`d`) or ON
 * UPDATE (`u`) action writes the referencing table (CASCADE, SET NULL, SET DEFAULT), the first
 * such key on the route deciding which writes reach it; '' for a route with none. A table is not
 * followed twice on one route (a key may refer to its own table).
 */
function tablesBehindSql(names: readonly string[]): string {
  const describe = (c: string, n: string) =>
    `(case ${c}.relkind when 'v' then 'the view ' when 'm' then 'the materialized view ' when 'p' then 'the partitioned table ' when 't' then 'the TOAST table ' when 'f' then 'the foreign table ' else 'the table ' end || ${n}.nspname || '.' || ${c}.relname) collate "C"`
  // The relations right behind b: what its rules' trees name (not b itself; a system catalog is
  // pinned, so pg_depend records no dependency on it and it is read from the tree), its children, and for
  // a TOAST table the table whose long values it stores (pg_toast.pg_toast_<oid> holds its data).
  // wr: the edge is a rule on a write, whose actions run statements of their own kind.
  const edges = (b: string) => `
    select d.refobjid as oid, rw.ev_type = '1' as sel, '' as fk, rw.ev_type <> '1' as wr
    from pg_rewrite rw
    join pg_depend d on d.classid = 'pg_rewrite'::regclass and d.objid = rw.oid and d.refclassid = 'pg_class'::regclass and d.refobjid <> ${b}.oid
    where rw.ev_class = ${b}.oid
    union all
    select m[1]::oid, rw.ev_type = '1', '', rw.ev_type <> '1'
    from pg_rewrite rw cross join lateral regexp_matches(rw.ev_action::text, ':relid (\\d+)', 'g') m
    where rw.ev_class = ${b}.oid and m[1]::int8 < ${FIRST_NORMAL_OBJECT_ID} and m[1]::oid <> ${b}.oid
    union all
    select i.inhrelid, true, '', false from pg_inherits i where i.inhparent = ${b}.oid
    union all
    select o.oid, true, '', false from pg_class o where o.reltoastrelid = ${b}.oid
    union all
    select k.conrelid, false,
           (case when k.confdeltype in ('c', 'n', 'd') then 'd' else '' end) || (case when k.confupdtype in ('c', 'n', 'd') then 'u' else '' end), false
    from pg_constraint k
    where k.contype = 'f' and k.confrelid = ${b}.oid and (k.confdeltype in ('c', 'n', 'd') or k.confupdtype in ('c', 'n', 'd'))`
  return `
    with recursive behind(oid, key, scope, depth, via, path, select_only, sys, cascade, seen, rewritten) as (
      select c.oid, c.relname::text, n.nspname::text, 0, '' collate "C", ${describe('c', 'n')}, true, false, '', array[c.oid], false
      from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where c.relname = any(${textArray(names)}) and ${userRelation('c', 'n')}
      union
      select e.oid, b.key, b.scope, b.depth + 1, (case when e.fk <> '' then 'a foreign key cascading from ' || b.path else b.path end) collate "C",
             (b.path || ', over ' || ${describe('c2', 'n2')}) collate "C",
             b.select_only and e.sel, ${systemRelationSql('c2')}, (case when b.cascade <> '' then b.cascade else e.fk end), b.seen || e.oid, b.rewritten or e.wr
      from behind b
      cross join lateral (${edges('b')}) e
      join pg_class c2 on c2.oid = e.oid
      join pg_namespace n2 on n2.oid = c2.relnamespace
      where b.depth < ${VIEW_DEPTH_LIMIT} and not b.sys and not e.oid = any(b.seen)
    )
    select * from (
      select distinct b.key, b.scope, n.nspname::text as schema, c.relname::text as name, b.via, b.select_only, b.cascade, b.rewritten,
             (b.depth = ${VIEW_DEPTH_LIMIT} and not b.sys and exists (select 1 from (${edges('b')}) e where not e.oid = any(b.seen))) as too_deep, c.relkind = 'f' as "foreign",
             (not b.sys and ${runsCodeOnWrite('c')}) as runs_code, b.depth
      from behind b join pg_class c on c.oid = b.oid join pg_namespace n on n.oid = c.relnamespace
    ) r
    where r.depth > 0 or r."foreign" or r.runs_code`
}

/**
 * The trigger functions a write to relations by name fires (not those PostgreSQL makes for foreign
 * keys, nor disabled ones, nor built-in ones): the relation's own, and those of the tables a write
 * to it reaches: what a view's or rule's tree names (an updatable view's table, a rule's
 * actions), a parent's partitions and children, the tables a cascading foreign key writes;
 * followed to VIEW_DEPTH_LIMIT levels; and what their WHEN conditions call. Policy judges their
 * bodies as the writing statement's own (src/policy/catalog.ts, `triggerOperations`).
 */
function triggersSql(names: readonly string[]): string {
  // The relations a write to r0 writes in turn.
  const edges = (r0: string) => `
        select d.refobjid as oid
        from pg_rewrite rw
        join pg_depend d on d.classid = 'pg_rewrite'::regclass and d.objid = rw.oid and d.refclassid = 'pg_class'::regclass and d.refobjid <> ${r0}.oid
        where rw.ev_class = ${r0}.oid
        union all
        select i.inhrelid from pg_inherits i where i.inhparent = ${r0}.oid
        union all
        select k.conrelid from pg_constraint k
        where k.contype = 'f' and k.confrelid = ${r0}.oid and (k.confdeltype in ('c', 'n', 'd') or k.confupdtype in ('c', 'n', 'd'))`
  return `
    with recursive rels(oid, key, scope, depth) as (
      select c.oid, c.relname::text, n.nspname::text, 0
      from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where c.relname = any(${textArray(names)}) and ${userRelation('c', 'n')}
      union
      select e.oid, r0.key, r0.scope, r0.depth + 1
      from rels r0 cross join lateral (${edges('r0')}) e
      where r0.depth < ${VIEW_DEPTH_LIMIT}
    )
    select distinct fn.nspname::text as schema, f.proname::text as name, '' as args, f.provolatile::text as volatility, f.prokind::text as kind,
           0 as nargs, 0 as ndefaults, false as "variadic",
           'the trigger ' || tg.tgname || ' on ' || rn.nspname || '.' || rc.relname as via, rels.scope as scope, rels.key as key, f.oid::int8 as oid
    from rels
    join pg_trigger tg on tg.tgrelid = rels.oid and not tg.tgisinternal and tg.tgenabled <> 'D'
    join pg_class rc on rc.oid = tg.tgrelid
    join pg_namespace rn on rn.oid = rc.relnamespace
    join pg_proc f on f.oid = tg.tgfoid
    join pg_namespace fn on fn.oid = f.pronamespace
    where fn.nspname <> 'pg_catalog'
    union
    -- What a trigger's WHEN condition calls runs before the trigger does, on every row written:
    -- the functions it names and those of the operators it uses (a user's, judged by their
    -- bodies; a volatile built-in one, not judged there, holds the write).
    select distinct fn.nspname::text, f.proname::text, '', f.provolatile::text, f.prokind::text, 0, 0, false,
           'the WHEN condition of the trigger ' || tg.tgname || ' on ' || rn.nspname || '.' || rc.relname, rels.scope, rels.key, f.oid::int8
    from rels
    join pg_trigger tg on tg.tgrelid = rels.oid and not tg.tgisinternal and tg.tgenabled <> 'D' and tg.tgqual is not null
    join pg_class rc on rc.oid = tg.tgrelid
    join pg_namespace rn on rn.oid = rc.relnamespace
    cross join lateral (
      -- A user's function or operator is a dependency; a built-in one (pinned) is not, and is read from the tree.
      select d.refobjid as fid from pg_depend d
      where d.classid = 'pg_trigger'::regclass and d.objid = tg.oid and d.refclassid = 'pg_proc'::regclass
      union
      select o.oprcode from pg_depend d join pg_operator o on o.oid = d.refobjid
      where d.classid = 'pg_trigger'::regclass and d.objid = tg.oid and d.refclassid = 'pg_operator'::regclass
      union
      select m[1]::oid from regexp_matches(tg.tgqual::text, ':funcid (\\d+)', 'g') m
      union
      select o.oprcode from regexp_matches(tg.tgqual::text, ':opno (\\d+)', 'g') m join pg_operator o on o.oid = m[1]::oid
    ) q
    join pg_proc f on f.oid = q.fid
    join pg_namespace fn on fn.oid = f.pronamespace
    where f.oid <> tg.tgfoid and (fn.nspname <> 'pg_catalog' or f.provolatile = 'v')
    union
    -- What else a write runs on the rows it writes: a user's function (or operator) in a column's
    -- default or generated value, a check or exclusion constraint, an index expression or operator
    -- class, a partition key, a check of a column's domain (or of one its type holds:
    -- columnTypesSql) or a column's domain's default, judged by its body as a trigger's is (a function declared IMMUTABLE
    -- may call a volatile one that deletes every row). Built-in ones there are not (nextval, now).
    select distinct fn.nspname::text, f.proname::text, '', f.provolatile::text, f.prokind::text, 0, 0, false,
           w.what || ' of ' || rn.nspname || '.' || rc.relname, rels.scope, rels.key, f.oid::int8
    from rels
    join pg_class rc on rc.oid = rels.oid
    join pg_namespace rn on rn.oid = rc.relnamespace
    cross join lateral (
      select 'a column default or generated value' as what, d.refclassid, d.refobjid
      from pg_attrdef ad join pg_depend d on d.classid = 'pg_attrdef'::regclass and d.objid = ad.oid
      where ad.adrelid = rels.oid
      union all
      select 'a constraint', d.refclassid, d.refobjid
      from pg_constraint co join pg_depend d on d.classid = 'pg_constraint'::regclass and d.objid = co.oid
      where co.conrelid = rels.oid
      union all
      -- (An index named as the relation is its own: REINDEX INDEX, judged as a write of it, evaluates its expressions.)
      select 'an index expression', d.refclassid, d.refobjid
      from pg_index ix join pg_depend d on d.classid = 'pg_class'::regclass and d.objid = ix.indexrelid
      where ix.indrelid = rels.oid or ix.indexrelid = rels.oid
      union all
      select 'the check of a column''s domain', d.refclassid, d.refobjid
      from (${columnTypesSql('rels.oid')}) ct
      join pg_constraint dc on dc.contypid = ct.oid
      join pg_depend d on d.classid = 'pg_constraint'::regclass and d.objid = dc.oid
      union all
      -- A write to a partitioned table evaluates its partition key on every row to route it, and a
      -- write straight into a partition checks the row against its ancestors' keys: their
      -- expressions' functions, and the support functions of their operator classes.
      select ${literal(PARTITION_KEY_VIA)}, 'pg_proc'::regclass::oid, pm[1]::oid
      from (${ancestorsSql('rels.oid')}) an
      join pg_partitioned_table pt on pt.partrelid = an.oid
      cross join lateral regexp_matches(coalesce(pt.partexprs::text, ''), ':(?:funcid|opfuncid|aggfnoid|winfnoid|hashfuncid|negfuncid) ([0-9]+)', 'g') pm
      union all
      select ${literal(`${PARTITION_KEY_VIA}'s operator class`)}, 'pg_proc'::regclass::oid, ap.amproc::oid
      from (${ancestorsSql('rels.oid')}) an
      join pg_partitioned_table pt on pt.partrelid = an.oid
      cross join unnest(pt.partclass::oid[]) pc(oid)
      join pg_opclass opc on opc.oid = pc.oid
      join pg_amproc ap on ap.amprocfamily = opc.opcfamily
      union all
      -- An index runs its operator classes' support functions on every row written (a btree's
      -- comparison function orders the new key among the others).
      select 'the operator class of an index', 'pg_proc'::regclass::oid, ap.amproc::oid
      from pg_index ix
      cross join unnest(ix.indclass::oid[]) ic(oid)
      join pg_opclass opc on opc.oid = ic.oid
      join pg_amproc ap on ap.amprocfamily = opc.opcfamily
      where ix.indrelid = rels.oid or ix.indexrelid = rels.oid
      union all
      -- ALTER COLUMN … TYPE reads the table's check constraints and index expressions again from
      -- their text, by name, so each call and operator in them may then resolve to another
      -- function of that name (\`length(x)\` to a user's public.length(int) once x is an integer):
      -- those, in a user's schema, count too.
      select 'a function a check constraint or index expression may call once read again by name', 'pg_proc'::regclass::oid, g.oid
      from (${storedExpressionsSql('rels.oid')}) se
      cross join lateral regexp_matches(se.tree, ':funcid ([0-9]+)', 'g') rm
      join pg_proc cf on cf.oid = rm[1]::oid
      join pg_proc g on g.proname = cf.proname and g.oid <> cf.oid
      join pg_namespace gn on gn.oid = g.pronamespace and gn.nspname not in ('pg_catalog', 'information_schema')
      union all
      select 'an operator a check constraint or index expression may run once read again by name', 'pg_proc'::regclass::oid, o2.oprcode::oid
      from (${storedExpressionsSql('rels.oid')}) se
      cross join lateral regexp_matches(se.tree, ':opno ([0-9]+)', 'g') om
      join pg_operator co on co.oid = om[1]::oid
      join pg_operator o2 on o2.oprname = co.oprname and o2.oid <> co.oid
      join pg_namespace o2n on o2n.oid = o2.oprnamespace and o2n.nspname <> 'pg_catalog'
      union all
      select 'a conversion to a domain in a default, generated value, check, index expression or trigger''s WHEN condition', 'pg_proc'::regclass::oid, dc.fid
      from (${storedExpressionsSql('rels.oid')}
            union all
            select ad.adbin::text from pg_attrdef ad where ad.adrelid = rels.oid
            union all
            select tg.tgqual::text from pg_trigger tg where tg.tgrelid = rels.oid and not tg.tgisinternal and tg.tgenabled <> 'D' and tg.tgqual is not null) st
      cross join lateral (${domainCoercionsSql('st.tree')}) dc
      union all
      select 'a support function of a range a column holds', 'pg_proc'::regclass::oid, rs.fid
      from (${columnTypesSql('rels.oid')}) ct
      cross join lateral (${rangeSupportSql('ct.oid', true)}) rs
      union all
      -- Not run by a write, but by ANALYZE of the table, which is judged as one (src/policy/walker.ts).
      -- (pg_statistic_ext.stxexprs is read through to_jsonb: servers before PostgreSQL 14 have none.)
      select 'an extended statistics expression', 'pg_proc'::regclass::oid, sm[1]::oid
      from pg_statistic_ext sx
      cross join lateral regexp_matches(coalesce(to_jsonb(sx) ->> 'stxexprs', ''), ':(?:funcid|opfuncid|aggfnoid|winfnoid|hashfuncid|negfuncid) ([0-9]+)', 'g') sm
      where sx.stxrelid = rels.oid
      union all
      select 'the default of a column''s domain', 'pg_proc'::regclass::oid, dm[1]::oid
      from (${columnDomainsSql('rels.oid')}) cd
      join pg_type dt on dt.oid = cd.oid and dt.typdefaultbin is not null
      cross join lateral regexp_matches(dt.typdefaultbin::text, ':(?:funcid|opfuncid|aggfnoid|winfnoid|hashfuncid|negfuncid) ([0-9]+)', 'g') dm
    ) w
    left join pg_operator o on w.refclassid = 'pg_operator'::regclass and o.oid = w.refobjid
    join pg_proc f on f.oid = (case when w.refclassid = 'pg_proc'::regclass then w.refobjid when w.refclassid = 'pg_operator'::regclass then o.oprcode end)
    join pg_namespace fn on fn.oid = f.pronamespace
    where fn.nspname not in ('pg_catalog', 'information_schema')
    union
    -- A rule on a write runs its actions with the write (not a view's ON SELECT rule, nor a disabled one).
    select distinct rn.nspname::text, rw.rulename::text, '', 'v', '${WRITE_RULE_KIND}', 0, 0, false,
           'the rule ' || rw.rulename || ' on ' || rn.nspname || '.' || rc.relname, rels.scope, rels.key, rw.oid::int8
    from rels
    join pg_rewrite rw on rw.ev_class = rels.oid and rw.ev_type <> '1' and rw.ev_enabled <> 'D'
    join pg_class rc on rc.oid = rw.ev_class
    join pg_namespace rn on rn.oid = rc.relnamespace
    union
    -- A relation the write reaches beyond the depth followed, whose triggers are not read (the
    -- write needs a reviewer); not one reached before (a table whose cascading key refers to
    -- itself reaches itself at every depth).
    select distinct rn.nspname::text, rc.relname::text, '', 'v', '${BEYOND_DEPTH_KIND}', 0, 0, false,
           'a write to ' || r0.scope || '.' || r0.key || ' reaches ' || rn.nspname || '.' || rc.relname, r0.scope, r0.key, null::int8
    from rels r0
    join pg_class rc on rc.oid = r0.oid
    join pg_namespace rn on rn.oid = rc.relnamespace
    where r0.depth = ${VIEW_DEPTH_LIMIT}
      and exists (select 1 from (${edges('r0')}) e
                  where e.oid not in (select r2.oid from rels r2 where r2.key = r0.key and r2.scope = r0.scope))`
}

/** Operators that are not built in, by symbol, with the function each one runs. */
function operatorsSql(symbols: readonly string[]): string {
  return `
    select fn.nspname::text as schema, f.proname::text as name, '' as args, f.provolatile::text as volatility,
           f.prokind::text as kind, case when o.oprleft = 0 then 1 else 2 end as nargs, 0 as ndefaults, false as "variadic",
           'operator ' || n.nspname || '.' || o.oprname as via, n.nspname::text as scope, o.oprname::text as key, f.oid::int8 as oid
    from pg_operator o
    join pg_namespace n on n.oid = o.oprnamespace
    join pg_proc f on f.oid = o.oprcode
    join pg_namespace fn on fn.oid = f.pronamespace
    where o.oprname = any(${textArray(symbols)}) and n.nspname <> 'pg_catalog'
    union all
    ${argumentEffectsSql(`
      select array_remove(array[o.oprleft, o.oprright], 0::oid) as types, case when o.oprleft = 0 then 1 else 2 end as nargs, 0 as ndefaults, false as "variadic",
             'operator ' || n.nspname || '.' || o.oprname as what, n.nspname::text as scope, o.oprname::text as key
      from pg_operator o join pg_namespace n on n.oid = o.oprnamespace
      where o.oprname = any(${textArray(symbols)})`)}`
}

/**
 * What a cast to a type that is not built in may run: cast functions into it, the checks of a
 * domain (and of the domains it is based on, and of a composite type's attribute and an array's
 * element types), and an input function that is not built in. For a
 * built-in type: the cast functions into it that are not built in (from a user's type).
 */
function castsSql(types: readonly string[]): string {
  return `
    with recursive chain(oid, key, scope) as (
      select t.oid, t.typname::text, n.nspname::text
      from pg_type t join pg_namespace n on n.oid = t.typnamespace
      where t.typname = any(${textArray(types)}) and n.nspname <> 'pg_catalog'
      union
      -- '#<oid>': a type an extended-protocol Parse declared for a parameter.
      select t.oid, '#' || t.oid::text, n.nspname::text
      from pg_type t join pg_namespace n on n.oid = t.typnamespace
      where '#' || t.oid::text = any(${textArray(types)})
      union
      -- A domain's base type; and, since a value converted into a composite type (row(5)::comp,
      -- json_populate_record) converts each field into its attribute's type, and into an array
      -- each element into the element type, those types too.
      select x.oid, c.key, c.scope
      from chain c join pg_type b on b.oid = c.oid
      ${TYPE_PARTS}
    )
    select fn.nspname::text as schema, f.proname::text as name, '' as args, f.provolatile::text as volatility, f.prokind::text as kind,
           1 as nargs, 0 as ndefaults, false as "variadic", 'cast to ' || c.scope || '.' || c.key as via, c.scope as scope, c.key as key, f.oid::int8 as oid
    from chain c join pg_cast k on k.casttarget = c.oid join pg_proc f on f.oid = k.castfunc join pg_namespace fn on fn.oid = f.pronamespace
    union all
    select fn.nspname::text, f.proname::text, '', f.provolatile::text, f.prokind::text, 1, 0, false,
           'check of domain ' || c.scope || '.' || c.key, c.scope, c.key, f.oid::int8
    from chain c
    join pg_constraint con on con.contypid = c.oid
    ${calledBy('con.conbin')}
    union all
    select fn.nspname::text, f.proname::text, '', f.provolatile::text, f.prokind::text, 1, 0, false,
           'support function of the range ' || format_type(c.oid, null) || ' (cast to ' || c.scope || '.' || c.key || ')', c.scope, c.key, f.oid::int8
    from chain c cross join lateral (${rangeSupportSql('c.oid', false)}) rs join pg_proc f on f.oid = rs.fid join pg_namespace fn on fn.oid = f.pronamespace
    where fn.nspname <> 'pg_catalog'
    union all
    select fn.nspname::text, f.proname::text, '', f.provolatile::text, f.prokind::text, 1, 0, false,
           'input function of ' || c.scope || '.' || c.key, c.scope, c.key, f.oid::int8
    from chain c join pg_type t on t.oid = c.oid join pg_proc f on f.oid = t.typinput join pg_namespace fn on fn.oid = f.pronamespace
    where fn.nspname <> 'pg_catalog'
    union all
    select fn.nspname::text, f.proname::text, '', f.provolatile::text, f.prokind::text, 1, 0, false,
           'cast to pg_catalog.' || t.typname || ' by ' || fn.nspname || '.' || f.proname, 'pg_catalog', t.typname::text, f.oid::int8
    from pg_type t join pg_cast k on k.casttarget = t.oid join pg_proc f on f.oid = k.castfunc join pg_namespace fn on fn.oid = f.pronamespace
    where t.typname = any(${textArray(types)}) and t.typnamespace = 'pg_catalog'::regnamespace and fn.nspname <> 'pg_catalog'`
}

/**
 * The bodies of user functions by OID: language, extension membership and the text to read. A SQL
 * body stored parsed (`BEGIN ATOMIC`, `RETURN`; pg_proc.prosqlbody, PostgreSQL 14 and later, read
 * through to_jsonb so that older servers answer too) is read back from its definition. `results`:
 * the types (not built in) its results are converted to, whose domain checks run on them.
 * `variable_conflict`: the database's (or role's, or server's) default for PL/pgSQL bodies, which
 * decides whether a column or a variable of the same name wins (src/policy/plpgsql-variables.ts).
 */
function bodiesSql(oids: readonly number[]): string {
  return `
    select p.oid::int8 as oid, l.lanname::text as language, p.prokind::text as kind,
           exists (select 1 from pg_depend d
                   where d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.refclassid = 'pg_extension'::regclass and d.deptype = 'e') as extension,
           p.prosrc as src, to_json(p.proconfig)::text as config,
           current_setting('plpgsql.variable_conflict', true) as variable_conflict,
           (to_jsonb(p) ->> 'prosqlbody') is not null as atomic,
           to_json(array(select format('%I.%I', tn.nspname, t.typname) from pg_type t join pg_namespace tn on tn.oid = t.typnamespace
                         where tn.nspname <> 'pg_catalog'
                           and (t.oid = p.prorettype
                                or t.oid in (select a.t from unnest(p.proallargtypes, p.proargmodes) a(t, m) where a.m in ('o', 'b', 't')))))::text as results,
           case when l.lanname = 'plpgsql' or (l.lanname = 'sql' and (to_jsonb(p) ->> 'prosqlbody') is not null) then pg_get_functiondef(p.oid) end as definition,
           ${constructsSql('p')} as constructs
    from pg_proc p join pg_language l on l.oid = p.prolang
    where p.oid = any(array[${oids.map((o) => `${Math.trunc(o)}`).join(', ')}]::oid[])`
}

/**
 * Which kind of type the function `p` (a pg_proc row) is the constructor of, `range` or
 * `multirange`, or null: CREATE TYPE … AS RANGE makes the constructors of the range type and of its
 * multirange type, returning that type and depending on it internally (pg_depend deptype 'i'),
 * which no CREATE FUNCTION can do.
 */
function constructsSql(p: string): string {
  return `(select case when r.rngtypid = ${p}.prorettype then 'range' else 'multirange' end
            from pg_range r
            where ${p}.prorettype in (r.rngtypid, r.rngmultitypid)
              and exists (select 1 from pg_depend d
                          where d.classid = 'pg_proc'::regclass and d.objid = ${p}.oid
                            and d.refclassid = 'pg_type'::regclass and d.refobjid = ${p}.prorettype and d.deptype = 'i'))`
}

/** proconfig as JSON (`["search_path=hidden"]`, or null). Throws on anything else: that function's body is then not read. */
/** A body's own settings, with the server's PL/pgSQL name resolution when it lets columns win. */
function configOf(r: Row): {config?: string[]} {
  const own = typeof r.config === 'string' ? configItems(r.config) : []
  const columnsWin = typeof r.variable_conflict === 'string' && r.variable_conflict.trim().toLowerCase() === 'use_column'
  const config = columnsWin ? [...own, 'plpgsql.variable_conflict=use_column'] : own
  return config.length > 0 || typeof r.config === 'string' ? {config} : {}
}

function configItems(json: string): string[] {
  const v: unknown = JSON.parse(json)
  if (v === null) return []
  if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v
  throw new Error(`unexpected proconfig ${json.slice(0, 100)}`)
}

/** The result types as JSON (`["public.money_d", "public._money_d"]`, an array type by its own name). Throws on anything else: that function's body is then not read. */
function resultTypes(json: string): string[] {
  const v: unknown = JSON.parse(json)
  if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v
  throw new Error(`unexpected result types ${json.slice(0, 100)}`)
}

/** How many levels of calls from body to body one lookup loads (policy judges deeper calls unknown). */
const BODY_LOAD_DEPTH = 4

/** How many times a lookup reads again when the catalog is invalidated while it reads. */
const LOOKUP_ATTEMPTS = 3

function toCandidate(r: Row): FunctionCandidate {
  const volatility = String(r.volatility) as Volatility
  return {
    schema: String(r.schema),
    name: String(r.name),
    ...(r.args ? {args: String(r.args)} : {}),
    volatility: volatility === 'i' || volatility === 's' ? volatility : 'v',
    kind: String(r.kind),
    nargs: Number(r.nargs),
    ndefaults: Number(r.ndefaults),
    variadic: r.variadic === true || r.variadic === 't',
    ...(r.via ? {via: String(r.via)} : {}),
    ...(r.scope ? {scope: String(r.scope)} : {}),
    ...(r.oid !== null && r.oid !== undefined ? {oid: Number(r.oid)} : {}),
  }
}

/** The enabled event triggers (`EVENT_TRIGGERS_KEY`): any of them runs its code on DDL. */
const EVENT_TRIGGERS_SQL = "select evtname::text as name from pg_catalog.pg_event_trigger where evtenabled <> 'D'"

function eventTriggerCandidate(r: Row): FunctionCandidate {
  return {schema: 'pg_catalog', name: String(r.name), volatility: 'v', kind: 'event_trigger', nargs: 0, ndefaults: 0, variadic: false}
}

/**
 * The setting prefixes the target's libraries use (`LIBRARY_SETTINGS_KEY`), as its server names
 * them: the prefix of every library setting defined in this session (pg_settings shows a name only
 * once its library has defined it; a name a session merely set is hidden), and the names of the
 * libraries it preloads, of the modules its C functions and language handlers are in (loaded on a
 * session's first call), of its procedural languages and of its extensions, which by convention
 * prefix their settings. A setting made before its library loads is taken over when it does.
 * Preload lists this role may not read are left out (pg_settings hides them rather than fail).
 */
const LIBRARY_SETTINGS_SQL = `select distinct prefix as name from (
    select lower(split_part(s.name, '.', 1)) as prefix from pg_catalog.pg_settings s where s.name like '%.%'
    union all
    select lower(regexp_replace(regexp_replace(btrim(lib, ' "'), '^.*[/\\\\]', ''), '\\.(so|dll|dylib|sl)$', ''))
    from pg_catalog.pg_settings s cross join lateral unnest(string_to_array(s.setting, ',')) lib
    where s.name in ('shared_preload_libraries', 'session_preload_libraries', 'local_preload_libraries')
    union all
    select lower(regexp_replace(regexp_replace(p.probin, '^.*[/\\\\]', ''), '\\.(so|dll|dylib|sl)$', '')) from pg_catalog.pg_proc p where p.probin is not null
    union all
    select lower(l.lanname) from pg_catalog.pg_language l where l.lanname not in ('internal', 'c', 'sql')
    union all
    select lower(e.extname) from pg_catalog.pg_extension e
  ) x where prefix <> ''`

function libraryCandidate(r: Row): FunctionCandidate {
  return {schema: 'pg_catalog', name: String(r.name), volatility: 'v', kind: 'library', nargs: 0, ndefaults: 0, variadic: false}
}

export class TargetFunctionCatalog implements LoadingFunctionCatalog, ViewAwareCatalog {
  readonly offline = false
  private gen = 0
  /** Counts `invalidate` calls: a lookup that began before one read what the catalog was then. */
  private epoch = 0
  private readonly entries = new Map<CatalogKey, Entry>()
  private readonly failures = new Map<CatalogKey, string>()
  private readonly inflight = new Map<CatalogKey, Promise<void>>()
  /** User functions' bodies, read with the entries that name them (so re-read with them). */
  private readonly bodies = new Map<number, FunctionBody>()
  /** What is behind each `r:` key, kept with (and as fresh as) its entry. */
  private readonly behind = new Map<CatalogKey, TableBehind[]>()
  private readonly ttlMs: number
  private readonly absentTtlMs: number
  private readonly now: () => number

  constructor(private readonly opts: TargetFunctionCatalogOptions) {
    this.ttlMs = opts.ttlMs ?? 60_000
    this.absentTtlMs = opts.absentTtlMs ?? 5_000
    this.now = opts.now ?? Date.now
  }

  get generation(): number {
    return this.gen
  }

  get(key: CatalogKey): readonly FunctionCandidate[] | undefined {
    return this.entries.get(key)?.candidates
  }

  body(oid: number): FunctionBody | undefined {
    return this.bodies.get(oid)
  }

  tablesBehind(key: CatalogKey): readonly TableBehind[] | undefined {
    return this.entries.has(key) ? (this.behind.get(key) ?? []) : undefined
  }

  unknownReason(key: CatalogKey): string {
    const failure = this.failures.get(key)
    return failure ? `the catalog lookup failed (${failure})` : 'it was not looked up'
  }

  /** Stale or unknown keys among `keys` and among what the bodies of their functions call, to the depth policy follows. */
  missing(keys: readonly CatalogKey[]): CatalogKey[] {
    const now = this.now()
    const out: CatalogKey[] = []
    const seen = new Set<CatalogKey>()
    let level: readonly CatalogKey[] = keys
    for (let depth = 0; level.length > 0 && depth <= BODY_LOAD_DEPTH; depth++) {
      const next: CatalogKey[] = []
      for (const k of level) {
        if (seen.has(k)) continue
        seen.add(k)
        const e = this.entries.get(k)
        if (!e || now - e.at > (e.candidates.length === 0 ? this.absentTtlMs : this.ttlMs)) {
          out.push(k)
          continue
        }
        for (const c of e.candidates) {
          const k = bodyKey(c)
          if (k !== undefined) next.push(...(this.bodies.get(k)?.keys ?? []))
        }
      }
      level = next
    }
    return out
  }

  load(keys: readonly CatalogKey[]): Promise<void> {
    const waits: Promise<void>[] = []
    const fresh: CatalogKey[] = []
    for (const k of keys) {
      const p = this.inflight.get(k)
      if (p) waits.push(p)
      else fresh.push(k)
    }
    if (fresh.length > 0) {
      const p = this.lookup(fresh).finally(() => {
        for (const k of fresh) if (this.inflight.get(k) === p) this.inflight.delete(k)
      })
      for (const k of fresh) this.inflight.set(k, p)
      waits.push(p)
    }
    return Promise.all(waits).then(() => undefined)
  }

  /** Forgets everything, e.g. after DDL that may have created, replaced or dropped a function. */
  invalidate(): void {
    this.entries.clear()
    this.bodies.clear()
    this.epoch++
    this.gen++
  }

  /**
   * Reads `keys` and keeps what it read, unless the catalog was invalidated meanwhile (a session's
   * change committed while the reads were on their way): then what came back may be the catalog
   * before it, kept for a minute as if fresh, so it reads again; after `LOOKUP_ATTEMPTS` the keys
   * stay unknown, and the statement that needs them is refused.
   */
  private async lookup(keys: readonly CatalogKey[], depth = 0, attempt = 1): Promise<void> {
    const epoch = this.epoch
    const byKind = {f: [] as string[], o: [] as string[], t: [] as string[], r: [] as string[], w: [] as string[]}
    for (const k of keys) byKind[k[0] as keyof typeof byKind]?.push(k.slice(2))
    const found = new Map<CatalogKey, FunctionCandidate[]>(keys.map((k) => [k, []]))
    const add = (prefix: string, rows: Row[]) => {
      for (const r of rows) found.get(`${prefix}:${String(r.key)}`)?.push(toCandidate(r))
    }
    const run = async (prefix: keyof typeof byKind, sql: string) => {
      const names = byKind[prefix]
      try {
        add(prefix, await this.opts.query(sql))
      } catch (error) {
        const message = (error as Error).message
        for (const n of names) {
          const k = `${prefix}:${n}`
          found.delete(k)
          this.failures.set(k, message)
        }
      }
    }
    if (byKind.f.length > 0) {
      const known = byKind.f.filter((n) => builtinCandidates(n) !== undefined)
      for (const n of known) found.get(`f:${n}`)!.push(...builtinCandidates(n)!)
      await run('f', functionsSql(byKind.f, known))
    }
    if (byKind.o.length > 0) await run('o', operatorsSql(byKind.o))
    if (byKind.t.length > 0) await run('t', castsSql(byKind.t))
    if (byKind.r.length > 0) await run('r', relationsSql(byKind.r))
    if (byKind.w.length > 0) await run('w', triggersSql(byKind.w))
    if (found.has(EVENT_TRIGGERS_KEY)) {
      try {
        found.get(EVENT_TRIGGERS_KEY)!.push(...(await this.opts.query(EVENT_TRIGGERS_SQL)).map(eventTriggerCandidate))
      } catch (error) {
        found.delete(EVENT_TRIGGERS_KEY)
        this.failures.set(EVENT_TRIGGERS_KEY, (error as Error).message)
      }
    }
    if (found.has(LIBRARY_SETTINGS_KEY)) {
      try {
        found.get(LIBRARY_SETTINGS_KEY)!.push(...(await this.opts.query(LIBRARY_SETTINGS_SQL)).map(libraryCandidate))
      } catch (error) {
        found.delete(LIBRARY_SETTINGS_KEY)
        this.failures.set(LIBRARY_SETTINGS_KEY, (error as Error).message)
      }
    }
    const {called, bodies} = await this.readBodies(found)
    const behind = byKind.r.length > 0 ? await this.lookupTablesBehind(byKind.r, found) : new Map<CatalogKey, TableBehind[]>()
    if (this.epoch !== epoch) {
      if (attempt < LOOKUP_ATTEMPTS) return this.lookup(keys, depth, attempt + 1)
      for (const k of keys) {
        this.entries.delete(k)
        this.failures.set(k, `the catalog changed ${LOOKUP_ATTEMPTS} times while it was being read; send the statement again`)
      }
      return
    }
    for (const [oid, body] of bodies) {
      if (body) this.bodies.set(oid, body)
      else this.bodies.delete(oid)
    }
    for (const [k, tables] of behind) this.behind.set(k, tables)
    const at = this.now()
    for (const [k, candidates] of found) {
      this.entries.set(k, {candidates, at})
      this.failures.delete(k)
    }
    this.gen++
    // What those bodies call, so that a statement's verdict never waits on a second round trip.
    const next = depth < BODY_LOAD_DEPTH ? this.missing(called).filter((k) => !keys.includes(k)) : []
    if (next.length > 0) await this.lookup(next, depth + 1)
  }

  /**
   * Reads the bodies of the user functions among `found` (every time their names are read, so a
   * function replaced outside the tunnel is judged anew); returns the keys those bodies call. A
   * body that cannot be read is left out: policy judges its function unknown.
   */
  private async readBodies(found: ReadonlyMap<CatalogKey, readonly FunctionCandidate[]>): Promise<{called: CatalogKey[]; bodies: Map<number, FunctionBody | undefined>}> {
    const oids = new Set<number>()
    const rules = new Set<number>()
    for (const candidates of found.values()) {
      for (const c of candidates) {
        if (c.oid === undefined) continue
        if (c.kind === WRITE_RULE_KIND) rules.add(c.oid)
        else if (!isBuiltinSchema(c.schema)) oids.add(c.oid)
      }
    }
    // Undefined: not read (the function is then judged unknown).
    const bodies = new Map<number, FunctionBody | undefined>([...[...oids].map((oid) => [oid, undefined] as const), ...[...rules].map((oid) => [-oid, undefined] as const)])
    const called = new Set<CatalogKey>()
    if (rules.size > 0) {
      try {
        await loadParser()
        const rows = await this.opts.query(`select rw.oid::int8 as oid, pg_catalog.pg_get_ruledef(rw.oid) as definition from pg_rewrite rw where rw.oid = any(array[${[...rules].map((o) => `${Math.trunc(o)}`).join(', ')}]::oid[])`)
        for (const r of rows) {
          if (typeof r.definition !== 'string') continue
          const body = readRuleBody(r.definition)
          bodies.set(-Number(r.oid), body)
          for (const k of body.keys) called.add(k)
        }
      } catch {
        // Left unread: the write that fires the rule needs a reviewer.
      }
    }
    if (oids.size === 0) return {called: [...called], bodies}
    try {
      await loadParser()
      const rows = await this.opts.query(bodiesSql([...oids]))
      for (const r of rows) {
        let body: FunctionBody
        try {
          body = readFunctionBody({
            language: String(r.language),
            kind: String(r.kind),
            extension: r.extension === true || r.extension === 't',
            atomic: r.atomic === true || r.atomic === 't',
            ...(typeof r.src === 'string' ? {src: r.src} : {}),
            ...(typeof r.definition === 'string' ? {definition: r.definition} : {}),
            ...configOf(r),
            ...(typeof r.results === 'string' ? {results: resultTypes(r.results)} : {}),
            ...(r.constructs === 'range' || r.constructs === 'multirange' ? {constructs: r.constructs} : {}),
          })
        } catch {
          continue
        }
        bodies.set(Number(r.oid), body)
        for (const k of body.keys) called.add(k)
      }
    } catch {
      for (const oid of oids) bodies.set(oid, undefined)
    }
    return {called: [...called], bodies}
  }

  /** Reads what is behind the relations `names`; a failed read leaves them unknown, as a failed relation lookup does. */
  private async lookupTablesBehind(names: readonly string[], found: Map<CatalogKey, FunctionCandidate[]>): Promise<Map<CatalogKey, TableBehind[]>> {
    try {
      const rows = await this.opts.query(tablesBehindSql(names))
      const byKey = new Map<CatalogKey, TableBehind[]>(names.map((n) => [`r:${n}`, []]))
      for (const r of rows) {
        byKey.get(`r:${String(r.key)}`)?.push({
          scope: String(r.scope),
          schema: String(r.schema),
          name: String(r.name),
          via: String(r.via),
          selectOnly: r.select_only === true || r.select_only === 't',
          ...(typeof r.cascade === 'string' && r.cascade !== '' ? {cascade: r.cascade} : {}),
          ...(r.rewritten === true || r.rewritten === 't' ? {rewritten: true as const} : {}),
          ...(r.too_deep === true || r.too_deep === 't' ? {tooDeep: true as const} : {}),
          ...(r.foreign === true || r.foreign === 't' ? {foreign: true as const} : {}),
          ...(r.runs_code === true || r.runs_code === 't' ? {runsCode: true as const} : {}),
        })
      }
      return byKey
    } catch (error) {
      for (const n of names) {
        found.delete(`r:${n}`)
        this.failures.set(`r:${n}`, (error as Error).message)
      }
      return new Map()
    }
  }
}
