import {beforeAll, describe, expect, it} from 'vitest'
import {MAX_BODY_CHARS, MAX_BODY_STATEMENTS, readFunctionBody} from '../../src/policy/function-body.js'
import {loadParser} from '../../src/sql/parser.js'

beforeAll(() => loadParser())

const plpgsql = (signature: string, body: string) =>
  readFunctionBody({language: 'plpgsql', kind: 'f', extension: false, atomic: false, definition: `CREATE OR REPLACE FUNCTION public.${signature} LANGUAGE plpgsql STABLE AS $function$${body}$function$`})

describe('reading a PL/pgSQL body', () => {
  it('reads the PL/pgSQL people write without calling it unknown, and finds every call in it', () => {
    const body = plpgsql(
      'report(n integer, OUT total integer, OUT names text[])',
      `
      declare
        r record;
        c cursor (k int) for select id from accounts where id > k;
        a int[] := array[1, 2];
        owner_name accounts.owner%type;
        msg text;
        alias_n alias for n;
      begin
        total := 0;
        a[first_of(a)] := 3;
        <<outer>>
        for r in c(alias_n) loop
          continue outer when r.id = skip_me(r.id);
          total := total + 1;
        end loop;
        foreach owner_name in array array['a', 'b'] loop
          names := names || owner_name;
        end loop;
        select owner into strict owner_name from accounts where id = n;
        assert total >= 0, 'negative ' || label_of(total);
        begin
          raise notice using message = 'total ' || total, hint = hint_of(n);
        exception when others then
          get stacked diagnostics msg = message_text;
          raise warning '%', msg;
        end;
        while total > 100 loop exit; end loop;
        case when n > 1 then total := 1; else total := 2; end case;
      end`,
    )
    expect(body.unreadable).toBeUndefined()
    expect(body.dynamic).toBeUndefined()
    expect(body.keys).toEqual(expect.arrayContaining(['f:first_of', 'f:skip_me', 'f:label_of', 'f:hint_of', 'r:accounts', 't:accounts']))
  })

  it('reads RETURNS TABLE functions and RETURN QUERY', () => {
    const body = plpgsql('rows_of(n int) RETURNS TABLE(id int, o text)', 'begin return query select a.id, a.owner from accounts a where a.id <= n; end')
    expect(body.unreadable).toBeUndefined()
    expect(body.keys).toContain('r:accounts')
  })

  it('finds every kind of dynamic SQL', () => {
    for (const stmt of [
      "execute 'select 1'",
      "execute format('select %s', 1) into v",
      "for r in execute 'select 1' loop end loop",
      "open c for execute 'select 1'",
    ]) {
      const body = plpgsql('dyn() RETURNS int', `declare v int; r record; c refcursor; begin ${stmt}; return 1; end`)
      expect(body.dynamic, stmt).toMatch(/EXECUTE/)
    }
    const rq = plpgsql('dyn() RETURNS SETOF int', `begin return query execute 'select 1'; end`)
    expect(rq.dynamic).toMatch(/EXECUTE/)
  })

  it("refuses to close a cursor that may be the client's, and lets a function close the cursors it opened", () => {
    const own = plpgsql('own() RETURNS int', 'declare c cursor for select 1; d refcursor; v int; begin open c; fetch c into v; close c; open d for select 2; close d; return v; end')
    expect(own.unreadable).toBeUndefined()
    for (const [signature, body] of [
      ['theirs(c refcursor) RETURNS int', 'begin close c; open c for select 2; return 1; end'],
      ['named() RETURNS int', "declare c refcursor := 'client_cursor'; begin close c; open c for select 2; return 1; end"],
      ['assigned() RETURNS int', "declare c refcursor; begin c := 'client_cursor'; close c; return 1; end"],
      ['selected() RETURNS int', "declare c refcursor; begin select 'client_cursor' into c; close c; return 1; end"],
    ] as const) {
      expect(plpgsql(signature, body).unreadable, signature).toMatch(/closes a cursor at line \d+ that may be one the client opened/)
    }
  })

  it("refuses to fetch from or move a cursor that may be the client's (its query was judged when the client opened it), and lets a function read the cursors it opened", () => {
    const own = plpgsql('own() RETURNS int', 'declare c cursor for select 1; d refcursor; v int; begin open c; fetch c into v; move c; open d for select 2; fetch d into v; move backward from d; return v; end')
    expect(own.unreadable).toBeUndefined()
    for (const [signature, body] of [
      ['theirs(c refcursor) RETURNS int', 'declare v int; begin fetch c into v; return v; end'],
      ['moved(c refcursor) RETURNS int', 'begin move forward all in c; return 1; end'],
      ['looped(c refcursor) RETURNS text', "declare v text; r text := ''; begin loop fetch c into v; exit when not found; r := r || v; end loop; return r; end"],
      ['named() RETURNS int', "declare c refcursor := 'client_cursor'; v int; begin fetch c into v; return v; end"],
      ['assigned() RETURNS int', "declare c refcursor; v int; begin c := 'client_cursor'; fetch next from c into v; return v; end"],
      ['selected() RETURNS int', "declare c refcursor; begin select 'client_cursor' into c; move c; return 1; end"],
    ] as const) {
      expect(plpgsql(signature, body).unreadable, signature).toMatch(/(fetches from|moves) a cursor at line \d+ that may be one the client opened/)
    }
  })

  it("reads the defaults libpg_query's tree leaves out: those of variables it takes for records (a type it does not know)", () => {
    const body = plpgsql(
      'recs() RETURNS int',
      `
      declare
        a int := 1; r accounts := row(from_row(1), 'x;y');
        "Odd ""Name"" x" my_domain
          default from_quoted(
            ';');
        q record = from_record();
        plain my_enum;
        m my_enum := 'a';
      begin
        declare inner_r my_domain := from_inner((1), (array[2])[1]); begin null; end;
        return 1;
      end`,
    )
    expect(body.unreadable).toBeUndefined()
    expect(body.keys).toEqual(expect.arrayContaining(['f:from_row', 'f:from_quoted', 'f:from_record', 'f:from_inner', 't:my_domain', 't:my_enum']))
  })

  it('judges the result types a body is converted to', () => {
    const body = readFunctionBody({language: 'sql', kind: 'f', extension: false, atomic: false, src: 'select 1', results: ['public.checked', 'public._checked', '"odd schema"."Odd"']})
    expect(body.unreadable).toBeUndefined()
    expect(body.keys).toEqual(expect.arrayContaining(['t:checked', 't:_checked', 't:Odd']))
    expect(readFunctionBody({language: 'sql', kind: 'f', extension: false, atomic: false, src: 'select 1', results: ['x; delete from t']}).unreadable).toMatch(/returns a type dbgate could not analyse/)
  })

  it('calls a body it cannot parse unreadable', () => {
    expect(plpgsql('broken() RETURNS int', 'begin return (; end').unreadable).toMatch(/could not read/)
    expect(readFunctionBody({language: 'sql', kind: 'f', extension: false, atomic: false, src: 'select (('}).unreadable).toMatch(/could not analyse/)
    expect(readFunctionBody({language: 'plpython3u', kind: 'f', extension: false, atomic: false, src: 'return 1'}).unreadable).toMatch(/written in plpython3u/)
    // An extension's function is not read at all.
    expect(readFunctionBody({language: 'c', kind: 'f', extension: true, atomic: false, src: 'similarity'})).toMatchObject({extension: true, statements: []})
  })
})

describe("a range type's constructor", () => {
  const internal = (src: string, constructs?: 'range' | 'multirange') => readFunctionBody({language: 'internal', kind: 'f', extension: false, atomic: false, src, ...(constructs ? {constructs} : {})})

  it("is a read only with the catalog's proof and a constructor C name of its kind", () => {
    for (const [src, kind] of [['range_constructor2', 'range'], ['range_constructor3', 'range'], ['multirange_constructor0', 'multirange'], ['multirange_constructor1', 'multirange'], ['multirange_constructor2', 'multirange']] as const) {
      expect(internal(src, kind), src).toEqual({extension: false, statements: [], keys: []})
    }
    // No proof, a constructor of the other kind, or another C function.
    for (const body of [internal('range_constructor2'), internal('range_constructor2', 'multirange'), internal('multirange_constructor1', 'range'), internal('pg_advisory_lock_int8', 'range')]) {
      expect(body.unreadable).toBe('is written in internal, whose body dbgate cannot read')
    }
  })
})

describe('a body too large to judge', () => {
  const sql = (src: string) => readFunctionBody({language: 'sql', kind: 'f', extension: false, atomic: false, src})

  it('is unknown past either limit, and read up to it', () => {
    expect(sql('select 1;'.repeat(MAX_BODY_STATEMENTS)).unreadable).toBeUndefined()
    expect(sql('select 1;'.repeat(MAX_BODY_STATEMENTS + 1)).unreadable).toBe(`has ${MAX_BODY_STATEMENTS + 1} statements and expressions in its body, more than the ${MAX_BODY_STATEMENTS} dbgate judges (a body that large would stall every session while it is analysed)`)
    const wide = `select '${'x'.repeat(MAX_BODY_CHARS - 9)}'`
    expect(sql(wide).unreadable).toBeUndefined()
    expect(sql(`${wide} `).unreadable).toMatch(new RegExp(`^has a body of ${MAX_BODY_CHARS + 1} characters, more than the ${MAX_BODY_CHARS} dbgate reads`))
    const atomic = readFunctionBody({language: 'sql', kind: 'f', extension: false, atomic: true, definition: `CREATE FUNCTION public.f() RETURNS int LANGUAGE sql BEGIN ATOMIC ${'select 1; '.repeat(MAX_BODY_STATEMENTS + 1)}END`})
    expect(atomic.unreadable).toMatch(new RegExp(`^has ${MAX_BODY_STATEMENTS + 1} statements`))
  })
})
