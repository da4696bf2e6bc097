/**
 * A statement held for a reviewer is judged by masking once approved, with the context it was
 * filed with. Sent in one write behind `BEGIN; <rename>`, it was filed before the reply to that
 * text arrived, so its context said no transaction was open ('I'); approved after the reply (which
 * said 'T'), masking paired that old status with the new ReadyForQuery count, took the rename as
 * committed, read the catalog again (which shows only committed state) and trusted it: a column
 * renamed in the open transaction was read by its old, clean name, and every full name went out in
 * clear. Real tunnel, real IdP, real PostgreSQL, a raw wire client.
 */
import {serialize} from 'pg-protocol'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {decide} from '../../src/approvals/review.js'
import {sampleCustomers} from '../../src/demo/sample-data.js'
import {decodeDataRow, decodeNotice} from '../../src/wire/backend.js'
import {withClient} from '../helpers/pg.js'
import {waitFor} from '../helpers/wait.js'
import type {RawMessage} from '../helpers/raw-client.js'
import {approvalSetting, type ApprovalSetting} from './helpers.js'

const TARGET = [
  'allow: [engineering]',
  'reviewers: [dba]',
  'approvals:',
  '  expiry: 15m',
  'rules:',
  '  - id: renames',
  '    match: {class: ddl}',
  '    action: allow',
  '  - id: people-reads-need-review',
  '    match: {class: read, tables: [people]}',
  '    action: require_approval',
].join('\n')
const NAMES = sampleCustomers().map((c) => c.fullName)
const SWAP = 'alter table people rename full_name to tmp; alter table people rename country to full_name; alter table people rename tmp to country'

describe('a statement approved after the reply that opened its transaction', () => {
  let s: ApprovalSetting
  beforeAll(async () => {
    s = await approvalSetting({database: 'held_begin', target: TARGET, requester: 'alice', others: ['bob']})
    const rows = sampleCustomers().map((c, i) => `(${i + 1}, '${c.fullName.replace(/'/g, "''")}', 'US')`)
    await withClient(s.db.url, (c) => c.query(`create table people (id int, full_name text, country text); insert into people values ${rows.join(', ')}`))
  })
  afterAll(() => s?.close())

  const READS = ['select (select country) as s from people', 'select case when true then country end as s from people']
  for (const begin of ['begin', 'start transaction read write']) {
    for (const read of READS) {
      it(`masks what the renamed column holds: ${begin}; …; ${read}`, async () => {
        const raw = await s.t.raw()
        raw.send(serialize.query('select 1'))
        await raw.untilReady()
        raw.send(serialize.query(`${begin}; ${SWAP}`), serialize.query(read))
        const opened = await raw.untilReady()
        expect(opened.filter((m) => m.code === 'E')).toEqual([])
        expect(opened.at(-1)!.body.toString()).toBe('T')
        let id: string | undefined
        const seen: RawMessage[] = [...opened]
        await waitFor(async () => {
          const m = await raw.next()
          seen.push(m)
          if (m.code === 'N') id = /waiting for approval (apr-[a-z0-9]+)/.exec(decodeNotice(m.body).message)?.[1]
          return id !== undefined || m.code === 'Z'
        }, 'the read is held for a reviewer')
        await decide({bucket: s.bucket, config: s.config, reviewer: await s.p.reviewer('bob')}, {id: id!, action: 'approve'})
        const got = await raw.untilReady()
        raw.send(serialize.query('rollback'))
        await raw.untilReady()
        raw.end()
        const values = got.filter((m) => m.code === 'D').flatMap((m) => decodeDataRow(m.body).map((v) => v?.toString('utf8') ?? ''))
        expect(values).toHaveLength(NAMES.length)
        expect(NAMES.filter((n) => values.some((v) => v.includes(n)))).toEqual([])
      })
    }
  }
})
