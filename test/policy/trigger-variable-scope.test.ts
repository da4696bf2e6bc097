import {describe, expect, it} from 'vitest'
import {seededTunnel} from '../helpers/seeded-tunnel.js'
import {refusedAsUnfiltered} from './unfiltered.js'

/**
 * A PL/pgSQL variable is one only inside its scope: a FOR loop's counter or cursor record inside
 * the loop, SQLSTATE and SQLERRM inside an exception handler, an inner block's declarations inside
 * that block. Outside, the same name is a column. Before, every name declared anywhere in the body
 * was a parameter in every statement, so `DELETE FROM accounts WHERE accounts.id = id` after
 * `FOR id IN 1..0 LOOP … END LOOP` passed as a filtered delete while the server compared each
 * row's id with itself and deleted every account. And `x.id`, x a scalar variable, was taken for
 * a parameter while PL/pgSQL leaves it to the server as the column of the relation aliased x.
 */
describe('a trigger body\'s variables, where they are in scope', () => {
  const {t, direct} = seededTunnel(`
    create table accounts (id int primary key, balance int);
    insert into accounts select g, 100 from generate_series(1, 10) g;
    create table errors (id int, sqlstate text);
    insert into errors select g, 'x' || g from generate_series(1, 5) g;
    create table audit (id int, note text);

    -- After the loop, id is accounts.id: the condition holds for every row.
    create function after_fori() returns trigger language plpgsql as $$
      begin
        for id in 1..0 loop null; end loop;
        delete from accounts where accounts.id = id;
        return null;
      end $$;
    -- The same, all on one line, with an outer declaration before it.
    create function after_fori_one_line() returns trigger language plpgsql as $$ declare n int := 0; begin for id in 1..n loop null; end loop; update accounts set balance = 0 where accounts.id = id; return null; end $$;
    -- A cursor loop's record is declared by the loop: after it, r is the alias of accounts.
    create function after_forc() returns trigger language plpgsql as $$
      declare c cursor for select 1 as id;
      begin
        for r in c loop null; end loop;
        delete from accounts r where r.id = r.id;
        return null;
      end $$;
    -- SQLSTATE is a variable only in an exception handler.
    create function after_handler() returns trigger language plpgsql as $$
      begin
        begin perform 1; exception when others then raise notice '%', sqlstate; end;
        delete from errors where errors.sqlstate = sqlstate;
        return null;
      end $$;
    -- An inner block's declaration ends with the block.
    create function after_inner_block() returns trigger language plpgsql as $$
      begin
        declare id int := 1; begin perform id; end;
        delete from accounts where accounts.id = id;
        return null;
      end $$;

    -- A scalar variable followed by a field is no variable to PL/pgSQL: x.id is the column of
    -- the alias x. The same with a variable of a domain type, which the parser without a
    -- catalog cannot tell from a record.
    create function scalar_alias() returns trigger language plpgsql as $$
      declare x int := 1;
      begin delete from accounts x where id = x.id; return null; end $$;
    create domain small_int as int;
    create function domain_alias() returns trigger language plpgsql as $$
      declare x small_int := 1;
      begin update accounts x set balance = 0 where id = x.id; return null; end $$;

    create table fori_t (id int);
    create trigger fori_t_t after insert on fori_t for each statement execute function after_fori();
    create table fori1_t (id int);
    create trigger fori1_t_t after insert on fori1_t for each statement execute function after_fori_one_line();
    create table forc_t (id int);
    create trigger forc_t_t after insert on forc_t for each statement execute function after_forc();
    create table handler_t (id int);
    create trigger handler_t_t after insert on handler_t for each statement execute function after_handler();
    create table block_t (id int);
    create trigger block_t_t after insert on block_t for each statement execute function after_inner_block();

    -- Ordinary bodies: variables used inside their scope still pick rows.
    create function in_scope() returns trigger language plpgsql as $$
      declare v_id int := new.id; r record; a accounts%rowtype;
      begin
        for r in select id from audit where note = 'gone' loop delete from audit where id = r.id; end loop;
        select * into a from accounts where id = 1;
        delete from audit where id = a.id and note = 'gone';
        for i in 1..2 loop delete from audit where id = i; end loop;
        begin
          perform 1 / 0;
        exception when others then
          insert into audit values (v_id, sqlstate);
          delete from audit where note = sqlerrm;
        end;
        delete from audit where id = v_id and note is null;
        return new;
      end $$;
    create table scalar_t (id int);
    create trigger scalar_t_t after insert on scalar_t for each statement execute function scalar_alias();
    create table domain_t (id int);
    create trigger domain_t_t after insert on domain_t for each statement execute function domain_alias();
    create table ok_t (id int);
    create trigger ok_t_t after insert on ok_t for each row execute function in_scope();
  `)
  const counts = () =>
    direct(async (c) => (await c.query('select (select count(*)::int from accounts) a, (select count(*)::int from errors) e, (select count(*)::int from audit) au, (select sum(balance)::int from accounts) bal')).rows[0] as {a: number; e: number; au: number; bal: number})

  it('refuses a statement whose name is a column outside the scope of a variable of that name', async () => {
    const c = await t.client()
    for (const sql of ['insert into fori_t values (1)', 'insert into fori1_t values (1)', 'insert into forc_t values (1)', 'insert into handler_t values (1)', 'insert into block_t values (1)', 'insert into scalar_t values (1)', 'insert into domain_t values (1)']) {
      const e = await refusedAsUnfiltered(c, sql)
      expect(e.detail, sql).toMatch(/run by the trigger \w+ on public\.\w+ \(public\.(after_\w+|scalar_alias|domain_alias)\)/)
    }
    expect(await counts()).toEqual({a: 10, e: 5, au: 0, bal: 1000})
    await c.end()
  })

  it('still runs a body whose loop counter, handler variables and declarations are used where they are variables', async () => {
    const c = await t.client()
    await c.query('insert into ok_t values (7)')
    expect(await counts()).toEqual({a: 10, e: 5, au: 1, bal: 1000})
    await c.end()
  })
})
