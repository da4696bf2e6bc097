/**
 * The payroll a `tables: ["hr.*"]` rule guards in the policy suites: hr.salaries, whose person
 * names carry a marker that must never reach a client, made a child of public tables by the
 * attacks (`ALTER TABLE hr.salaries INHERIT …`).
 */
import {createTestDatabase, withClient, type UpstreamInfo} from './pg.js'

/** A fresh test database with `rows` rows in hr.salaries, each person named `<secret> <n>`, then `extraSql`. */
export async function payrollDatabase(secret: string, rows = 5, extraSql = ''): Promise<UpstreamInfo> {
  const db = await createTestDatabase()
  await withClient(db.url, (c) =>
    c.query(`
      create schema hr;
      create table hr.salaries (id int, person text, amount int);
      insert into hr.salaries select g, '${secret} ' || g, g from generate_series(1, ${rows}) g;
      ${extraSql}
    `),
  )
  return db
}

/** Takes hr.salaries out from under every table an attack made it a child of. */
export function uninheritPayroll(db: UpstreamInfo): Promise<unknown> {
  return withClient(db.url, (c) =>
    c.query(`do $$ declare r record; begin for r in select inhparent::regclass::text as p from pg_inherits where inhrelid = 'hr.salaries'::regclass loop execute 'alter table hr.salaries no inherit ' || r.p; end loop; end $$`),
  )
}
