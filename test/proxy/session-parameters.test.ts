import {serialize} from 'pg-protocol'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {decodeDataRow, decodeParameterStatus} from '../../src/wire/backend.js'
import {createTestDatabase, type UpstreamInfo} from '../helpers/pg.js'
import {RawClient} from '../helpers/raw-client.js'
import {startTunnel, type TestTunnel} from '../helpers/tunnel.js'

/**
 * A session keeps the server-reported parameters of its login for its lifetime, and the tunnel
 * keeps a single copy of texts that are equal across sessions (upstream.ts, `sharedText`): the
 * sharing must never let one session's value show in another.
 */
describe('server-reported parameters per session', () => {
  let db: UpstreamInfo
  let t: TestTunnel
  beforeAll(async () => {
    db = await createTestDatabase()
    t = await startTunnel(db)
  })
  afterAll(() => t.close())

  const login = (application_name: string) => RawClient.connect(t.port, {password: t.secret, database: db.database, params: {application_name}})
  /** The application_name the tunnel relayed at login (ParameterStatus), and what the server says now. */
  const told = (c: RawClient) => c.messages.filter((m) => m.code === 'S').map((m) => decodeParameterStatus(m.body)).find((p) => p.name === 'application_name')?.value
  const shown = async (c: RawClient) => {
    c.send(serialize.query('show application_name'))
    const row = (await c.untilReady()).find((m) => m.code === 'D')!
    return decodeDataRow(row.body)[0]!.toString()
  }

  it("are each session's own, at login and after a change", async () => {
    const names = ['alpha', 'beta', 'alpha']
    const clients = await Promise.all(names.map(login))
    try {
      for (const [i, c] of clients.entries()) {
        expect(told(c)).toMatch(new RegExp(`(^|/)${names[i]}$`))
        expect(await shown(c)).toBe(told(c))
      }
      clients[0]!.send(serialize.query("set application_name = 'gamma'"))
      await clients[0]!.untilReady()
      expect(await shown(clients[0]!)).toMatch(/(^|\/)gamma$/)
      expect(await shown(clients[2]!)).toBe(told(clients[2]!))
      // A session that logs in later is told its own value, not one shared by a session before it.
      const late = await login('delta')
      try {
        expect(told(late)).toMatch(/(^|\/)delta$/)
        expect(await shown(late)).toBe(told(late))
      } finally {
        late.end()
      }
    } finally {
      for (const c of clients) c.end()
    }
  })
})
