import {describe, expect, it} from 'vitest'
import {createTestDatabase, withClient} from './helpers/pg.js'

describe('test PostgreSQL', () => {
  it('is a real server that runs SQL', async () => {
    const db = await createTestDatabase()
    const v = await withClient(db.url, (c) => c.query('select current_database() as d, version() as v'))
    expect(v.rows[0].d).toBe(db.database)
    expect(v.rows[0].v).toMatch(/^PostgreSQL \d+/)
  })
})
