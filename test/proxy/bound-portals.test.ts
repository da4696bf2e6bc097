/**
 * Portals bound in a pipeline that no Execute runs are recorded (the server planned them at their
 * Bind). They were kept until the pipeline's ReadyForQuery: a client that bound the unnamed portal
 * again and again with no Sync, reading its BindCompletes, made the tunnel keep every one (200,000
 * Binds, 145 MiB) while the server kept one portal. A portal replaced under its name can no longer
 * run, so it is recorded as bound then, and only the latest of each name waits for the end.
 */
import {serialize} from 'pg-protocol'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {ClientConnection} from '../../src/proxy/connection.js'
import type {StatementEvent} from '../../src/proxy/seam.js'
import {createTestDatabase} from '../helpers/pg.js'
import {RawClient} from '../helpers/raw-client.js'
import {startTunnel, type TestTunnel} from '../helpers/tunnel.js'

const {parse, bind, execute, close, flush, sync} = serialize

describe('portals bound and never executed, in a long pipeline', () => {
  let t: TestTunnel
  let database: string
  const events: StatementEvent[] = []
  beforeAll(async () => {
    const db = await createTestDatabase('bound')
    database = db.database
    t = await startTunnel(db, {statement: () => ({action: 'allow'}), onStatement: (e) => void events.push(e)})
  }, 120_000)
  afterAll(async () => {
    await t?.close()
  })

  const n = 5000
  const CASES: [string, () => Buffer[], {bound: number; ok: number}][] = [
    ['the unnamed portal bound again and again', () => Array.from({length: n}, () => bind({statement: 's', portal: ''})), {bound: n, ok: 0}],
    ['a named portal bound and closed again and again', () => Array.from({length: n}, () => [bind({statement: 's', portal: 'p'}), close({type: 'P', name: 'p'})]).flat(), {bound: n, ok: 0}],
    [
      'every other Bind of the unnamed portal executed',
      () => Array.from({length: n}, (_, i) => (i % 2 ? [bind({statement: 's', portal: ''}), execute({portal: ''})] : [bind({statement: 's', portal: ''})])).flat(),
      {bound: n / 2, ok: n / 2},
    ],
  ]

  for (const [what, messages, want] of CASES) {
    it(`records each as it is replaced, and every Bind once: ${what}`, async () => {
      const raw = await RawClient.connect(t.port, {password: t.secret, database})
      raw.send(parse({name: 's', text: 'select 1', types: []}), sync())
      await raw.untilReady()
      const conn = [...(t.tunnel as unknown as {registry: {connections: Set<ClientConnection>}}).registry.connections].at(-1)!
      const from = events.length
      const ofSession = () => events.slice(from)
      const pipeline = messages()
      raw.send(...pipeline, flush())
      // Every reply of the pipeline, before its Sync: one BindComplete, CloseComplete or CommandComplete per message.
      for (let answered = 0; answered < pipeline.length; ) {
        const m = await raw.next(30_000)
        if (m.code === 'E') throw new Error(m.body.toString())
        if (m.code === '2' || m.code === '3' || m.code === 'C') answered++
      }
      expect(conn.state.pendingCount, what).toBe(0)
      // All but the last Bind are recorded already: nothing of them is kept waiting for the Sync.
      const boundSoFar = ofSession().filter((e) => e.outcome === 'bound').length
      expect(boundSoFar, what).toBeGreaterThanOrEqual(want.bound - 1)
      raw.send(sync())
      await raw.untilReady()
      raw.end()
      const all = ofSession()
      expect(all.filter((e) => e.outcome === 'bound').length, what).toBe(want.bound)
      expect(all.filter((e) => e.outcome === 'ok' && e.sql === 'select 1').length, what).toBe(want.ok)
    })
  }
})
