import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {createTestDatabase} from '../helpers/pg.js'
import {startTunnel, type TestTunnel} from '../helpers/tunnel.js'

describe('tunnel smoke', () => {
  let t: TestTunnel
  beforeAll(async () => {
    t = await startTunnel(await createTestDatabase())
  })
  afterAll(() => t.close())

  it('runs simple and extended queries', async () => {
    const c = await t.client()
    const r = await c.query('select 1 as one')
    expect(r.rows).toEqual([{one: 1}])
    const r2 = await c.query('select $1::int + 1 as two', [1])
    expect(r2.rows).toEqual([{two: 2}])
  })
})
