/**
 * A refused Bind or Execute is replaced on the wire by a message the server must reject, so that it
 * answers with an error in its place. That message was a Bind of the statement "dbgate refused
 * binding" and an Execute of the portal "dbgate refused portal", which failed only while no such
 * statement or portal existed; but SQL makes both: PREPARE "dbgate refused binding" AS …, DECLARE
 * "dbgate refused portal" CURSOR FOR …. A refused Execute then ran the client's cursor on the server
 * (nextval advanced, a function called) while the recording said it was refused, and the tunnel,
 * meeting rows where it expected an error, closed the connection. The replacement is now a Bind the
 * server rejects while reading it, whatever the session has made.
 */
import {readdir, readFile} from 'node:fs/promises'
import {join} from 'node:path'
import {serialize} from 'pg-protocol'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {StatementData} from '../../src/audit/events.js'
import {parseEvents} from '../../src/audit/read.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {codes, errorOf, type RawClient} from '../helpers/raw-client.js'

const RULES = ['rules:', ...['read', 'write', 'ddl', 'admin', 'opaque'].flatMap((c) => [`  - id: allow-${c}`, `    match: {class: ${c}}`, '    action: allow'])].join('\n')

/** What a session makes under the names the refusals used, each with a side effect the test can see. */
const DECOYS: Record<string, (seq: string) => string> = {
  'a cursor named like the refusal portal': (seq) => `begin; declare "dbgate refused portal" cursor with hold for select nextval('${seq}') from generate_series(1, 3); commit`,
  'a statement named like the refusal statement': (seq) => `prepare "dbgate refused binding" as select nextval('${seq}')`,
  'both, in a transaction block': (seq) => `begin; prepare "dbgate refused binding" as select nextval('${seq}'); declare "dbgate refused portal" cursor for select nextval('${seq}') from generate_series(1, 3)`,
}

/** Every refusal the tunnel answers in place of a client's Bind or Execute. */
const REFUSALS: Record<string, Buffer[]> = {
  'an Execute of a portal the tunnel does not know': [serialize.execute({portal: 'never_bound'}), serialize.sync()],
  'a Bind of a statement the tunnel does not know, and the Execute of its portal': [serialize.bind({statement: 'never_parsed'}), serialize.execute({}), serialize.sync()],
  'a Bind of a named portal to an unknown statement, and its Execute': [serialize.bind({statement: 'never_parsed', portal: 'p1'}), serialize.execute({portal: 'p1'}), serialize.sync()],
}

describe('a refused Bind or Execute, beside a statement or cursor named like the refusal', () => {
  let db: UpstreamInfo
  let t: PipelineTunnel & {env: NodeJS.ProcessEnv}
  let n = 0

  beforeAll(async () => {
    db = await createTestDatabase('refusal_names')
    t = await openPipelineTunnel(db, RULES)
  }, 120_000)
  afterAll(async () => {
    await t?.close()
  })

  const lastValue = (seq: string) => withClient(db.url, async (d) => (await d.query(`select last_value::int as v, is_called from ${seq}`)).rows[0] as {v: number; is_called: boolean})

  async function recorded(): Promise<StatementData[]> {
    const spool = join(t.env.XDG_STATE_HOME!, 'dbgate', 'spool')
    const out: StatementData[] = []
    for (const f of (await readdir(spool)).filter((f) => f.endsWith('.jsonl'))) {
      for (const e of parseEvents(await readFile(join(spool, f), 'utf8'))) if (e.type === 'statement') out.push(e.data as StatementData)
    }
    return out
  }

  for (const [decoy, make] of Object.entries(DECOYS)) {
    for (const [refusal, messages] of Object.entries(REFUSALS)) {
      it(`${decoy}; ${refusal}: refused, nothing of the session's runs, and the connection goes on`, async () => {
        const seq = `decoy_${++n}`
        await withClient(db.url, (d) => d.query(`create sequence ${seq}`))
        const c: RawClient = await t.raw()
        c.send(serialize.query(make(seq)))
        expect(errorOf(await c.untilReady())).toBeUndefined()
        // A cursor WITH HOLD ran its query at its COMMIT; what counts is what the refusal runs.
        const before = await lastValue(seq)

        c.send(...messages)
        const replies = await c.untilReady()
        expect(codes(replies)).toMatch(/^E?Z$|^EZ$/)
        expect(errorOf(replies)?.message).toMatch(/^dbgate: .* is not known to the tunnel$/)
        // The server ran nothing of the decoy: the sequence did not move.
        expect(await lastValue(seq)).toEqual(before)
        // The session goes on: the refusal was an error in its place, not a desync (an open block
        // is aborted by it, as by any error, and rolled back first).
        c.send(serialize.query('rollback'))
        await c.untilReady()
        c.send(serialize.query('select 1 as still_here'))
        expect(codes(await c.untilReady())).toBe('TDCZ')
        const refused = (await recorded()).filter((s) => /never_bound|never_parsed/.test(s.sql) && s.connectionId !== undefined)
        expect(refused.length).toBeGreaterThan(0)
        expect(new Set(refused.map((s) => s.outcome))).toEqual(new Set(['rejected']))
        c.end()
      })
    }
  }
})
