/**
 * Which DDL leaves every existing relation as it was (src/policy/relation-keeping.ts): after it, the
 * relations a later statement of the same transaction names are still what the committed catalog
 * says. Everything else counts as a change to what is behind relations, as all DDL did before.
 */
import {beforeAll, describe, expect, it} from 'vitest'
import {analyze} from '../../src/policy/index.js'
import {loadParser} from '../../src/sql/parser.js'

beforeAll(async () => {
  await loadParser()
})

const keeps = (sql: string): boolean => analyze(sql).statements[0]!.operations.some((o) => o.keepsRelations === true)

describe('DDL that keeps relations', () => {
  it('counts a migration’s own tables, columns, constraints, indexes and sequences', () => {
    for (const sql of [
      'create table public.m (id serial primary key, name text not null default now()::text, team int references public.teams (id) on delete cascade, check (length(name) > 0))',
      'create temp table m (id bigint, at timestamptz, amount numeric(10, 2), tags text[], doc jsonb)',
      'create table m (id int, primary key (id), foreign key (id) references n (id) on delete cascade) partition by range (id)',
      'alter table public.teams add column note text default lower(\'X\'), alter column name set not null, add constraint c check (length(name) < 100)',
      'alter table teams add column owner int references people (id), drop column old, alter column name type varchar(50) using name::varchar',
      'alter table teams alter column id set default 0, alter column id drop default, alter column name set statistics 100, validate constraint c, drop constraint c',
      'alter table teams add constraint f foreign key (owner) references people (id) on delete restrict on update no action',
      'alter table teams add column id2 int generated always as identity, replica identity full, set logged',
      'create index on public.teams (lower(name)) where id > 0',
      'create unique index concurrently i on teams using btree (name, id desc)',
      'create sequence public.s',
      'alter sequence s owned by teams.id',
      "comment on table teams is 'teams'",
      'create statistics st on id, name from teams',
    ]) {
      expect(keeps(sql), sql).toBe(true)
    }
  })

  it('does not count what may put rows behind a name, run code the statement does not show, or change a view', () => {
    for (const sql of [
      // Inheritance, partitions, typed tables, copied definitions.
      'create table public.kid (id int) inherits (public.parent)',
      'create table kid partition of parted for values from (1) to (2)',
      'create table kid of some_type',
      'create table kid (like hr.salaries)',
      'create table kid as select * from public.teams',
      'select * into kid from public.teams',
      'alter table hr.salaries add column extra int, inherit public.parent',
      'alter table hr.salaries no inherit public.parent',
      'alter table parted attach partition hr.salaries_part for values from (0) to (10)',
      'alter table parted detach partition p1',
      // Column types that are not built in: a domain's check runs on every write.
      'alter table teams add column d public.money_domain',
      'alter table teams alter column name type public.name_domain',
      'create table kid (d hr.domain_with_check)',
      'alter table teams add column p public.parent',
      // Code on writes: cascades into an existing table, exclusion operators, operator classes.
      'alter table teams add constraint f foreign key (owner) references people (id) on delete cascade',
      'alter table teams add column owner int references people (id) on update set null',
      'alter table teams add constraint x exclude using gist (id with =)',
      'create table kid (id int, exclude using gist (id with =))',
      'create index on teams (name text_pattern_ops)',
      'create index on teams using my_method (name)',
      // Triggers, rules, row security, owners, storage parameters (a view's security_barrier), foreign tables.
      'alter table teams enable trigger all',
      'alter table teams disable rule r',
      'alter table teams enable row level security',
      'alter table teams force row level security',
      'alter table teams owner to someone',
      'alter table teams set (fillfactor = 90)',
      'alter table teams set access method my_am',
      'create table kid (id int) using my_am',
      'alter table teams alter constraint f deferrable',
      'alter table teams drop column old cascade',
      'alter table teams drop constraint c cascade',
      'alter table teams reset (security_barrier)',
      'alter view v alter column id set default 0',
      'alter foreign table f options (set table_name \'x\')',
      'alter materialized view mv set tablespace t',
      // Everything else that is DDL.
      'alter table teams rename to t2',
      'alter table teams set schema hr',
      'create view v as select 1',
      'create function f() returns int language sql as $$ select 1 $$',
      'create rule r as on insert to teams do instead nothing',
      'create trigger t before insert on teams for each row execute function f()',
      'create policy p on teams using (true)',
      'create materialized view mv as select 1',
      'drop table teams',
      'truncate teams',
      'security label on table teams is \'x\'',
    ]) {
      expect(keeps(sql), sql).toBe(false)
    }
  })
})
