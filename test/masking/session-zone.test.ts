/**
 * Settings that unseen code sets to a value it read, reported or printed where `SHOW` and
 * `current_setting` are not involved, attacked through the real tunnel with the policy pack `none`.
 * TimeZone takes a POSIX zone whose abbreviation is free letters (`AliceNovak5`): after a DO block
 * set it so, the server reported it to the client in a ParameterStatus, and `to_char(now(), 'TZ')`
 * and `timeofday()` printed the abbreviation, while `SHOW timezone` was masked. `scram_iterations`
 * is reported too, and holds nine digits of an SSN.
 */
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {sampleCustomers} from '../../src/demo/sample-data.js'
import {withClient} from '../helpers/pg.js'
import {openUnseenCodeTunnel, type UnseenCodeTunnel} from './unseen-code.js'

const customers = sampleCustomers()
/** Names as a POSIX zone's abbreviation holds them: letters only, compared case-insensitively. */
const ZONES = customers.map((c) => c.fullName.replace(/[^A-Za-z]/g, '').toLowerCase())
const SSN_DIGITS = customers.map((c) => c.ssn.replace(/-/g, ''))

const SET_ZONE = (id: number) => `do $$ begin perform set_config('TimeZone', regexp_replace((select full_name from customers where id = ${id}), '[^A-Za-z]', '', 'g') || '5', false); end $$`
const SET_ITERATIONS = (id: number) => `do $$ begin perform set_config('scram_iterations', replace((select ssn from customers where id = ${id}), '-', ''), false); end $$`

const STEPS: string[][] = [
  [SET_ZONE(1), 'select 1'],
  [SET_ZONE(2), "select to_char(now(), 'TZ') as z"],
  [SET_ZONE(3), "select to_char(now(), 'YYYY-MM-DD HH24:MI tz') as z"],
  [SET_ZONE(4), 'select timeofday() as z'],
  [SET_ITERATIONS(5), 'select 1'],
]

describe('settings that unseen code set, reported or printed', () => {
  let t: UnseenCodeTunnel

  beforeAll(async () => {
    t = await openUnseenCodeTunnel()
  })
  afterAll(() => t?.close())
  const run = (steps: string[]) => t.run(steps)

  const leaks = (seen: Buffer | string) => {
    const text = Buffer.from(seen).toString('latin1').toLowerCase()
    return [...ZONES, ...SSN_DIGITS].filter((v) => text.includes(v))
  }

  it('has no vacuous case: directly, each reports or prints a name or an SSN', async () => {
    for (const steps of STEPS) {
      const seen = await withClient(t.fx.db.url, async (c) => {
        const out: unknown[] = []
        const connection = (c as unknown as {connection: {on(e: string, f: (m: unknown) => void): void}}).connection
        connection.on('parameterStatus', (m) => out.push(m))
        for (const sql of steps) out.push((await c.query(sql)).rows)
        return JSON.stringify(out)
      })
      expect(leaks(seen), steps.join('; ')).not.toEqual([])
    }
  })

  it('masks them once such code ran', async () => {
    const leaking: string[] = []
    for (const steps of STEPS) {
      const {seen, errors} = await run(steps)
      expect(errors, steps.join('; ')).toEqual([])
      if (leaks(seen).length > 0) leaking.push(steps.join('; '))
    }
    expect(leaking).toEqual([])
  })

  it('keeps the zone the client set itself', async () => {
    const {seen, rows, errors} = await run(["set timezone = 'Europe/Berlin'", "select to_char(timestamptz '2026-01-15 12:00+00', 'HH24 TZ') as z"])
    expect(errors).toEqual([])
    expect(rows[1]).toEqual([{z: '13 CET'}])
    expect(seen.includes(Buffer.from('TimeZone\0Europe/Berlin\0'))).toBe(true)
  })
})
