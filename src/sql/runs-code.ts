/**
 * SQL over the system catalogs, shared by the policy's and masking's reads of them: what runs when
 * a relation is written.
 */

/**
 * Whether a write to the relation `c` runs user code the statement does not name: a trigger
 * (other than those PostgreSQL makes for foreign keys), or a column default, generated column,
 * check or exclusion constraint, index expression or column domain's check that calls a function
 * outside pg_catalog, or an operator whose function is; or such code of a table a cascading foreign key writes in turn (one that is
 * itself written by a further cascade counts as running code, unfollowed). Such code may run DDL
 * (src/policy/views.ts counts the write as a change), and, but for a plain default, may copy the
 * values the write puts in the row anywhere (src/masking/catalog.ts: no value written there is
 * proven clean for the recording).
 */
export function runsCodeOnWrite(c: string, opts: {plainDefaults?: boolean} = {}): string {
  // A default that is not a generated column's never sees the row's values: `plainDefaults: false`
  // leaves it out where only code that sees them matters.
  const defaults = opts.plainDefaults === false ? ` and exists (select 1 from pg_attribute ga where ga.attrelid = ad.adrelid and ga.attnum = ad.adnum and ga.attgenerated <> '')` : ''
  const outside = (f: string) => `${f}.pronamespace not in ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)`
  // An expression depends on the functions it calls, and on the operators it uses (not on their functions).
  const userFunction = (classid: string, objid: string) => `exists (
        select 1 from pg_depend d
        where d.classid = '${classid}'::regclass and d.objid = ${objid}
          and ((d.refclassid = 'pg_proc'::regclass and exists (select 1 from pg_proc f where f.oid = d.refobjid and ${outside('f')}))
            or (d.refclassid = 'pg_operator'::regclass
                and exists (select 1 from pg_operator o join pg_proc f on f.oid = o.oprcode where o.oid = d.refobjid and ${outside('f')}))))`
  const own = (oid: string) => `(
      exists (select 1 from pg_trigger tg join pg_proc tf on tf.oid = tg.tgfoid
              where tg.tgrelid = ${oid} and not tg.tgisinternal and tf.pronamespace <> 'pg_catalog'::regnamespace)
      or exists (select 1 from pg_attrdef ad where ad.adrelid = ${oid}${defaults} and ${userFunction('pg_attrdef', 'ad.oid')})
      or exists (select 1 from pg_constraint co where co.conrelid = ${oid} and ${userFunction('pg_constraint', 'co.oid')})
      or exists (select 1 from pg_index ix where ix.indrelid = ${oid} and ${userFunction('pg_class', 'ix.indexrelid')})
      or exists (select 1 from pg_attribute at join pg_constraint dc on dc.contypid = at.atttypid
                 where at.attrelid = ${oid} and at.attnum > 0 and not at.attisdropped and ${userFunction('pg_constraint', 'dc.oid')}))`
  // The tables a cascading key (ON DELETE/UPDATE CASCADE, SET NULL, SET DEFAULT) writes when `oid` is written.
  const cascaded = (oid: string, alias: string) =>
    `select ${alias}.conrelid as oid from pg_constraint ${alias} where ${alias}.contype = 'f' and ${alias}.confrelid = ${oid}
       and (${alias}.confdeltype in ('c', 'n', 'd') or ${alias}.confupdtype in ('c', 'n', 'd'))`
  return `(${own(`${c}.oid`)}
      or exists (select 1 from (${cascaded(`${c}.oid`, 'fk1')}) k
                 where ${own('k.oid')} or exists (select 1 from (${cascaded('k.oid', 'fk2')}) k2 where k2.oid not in (k.oid, ${c}.oid))))`
}
