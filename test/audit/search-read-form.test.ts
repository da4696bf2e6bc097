import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import SessionsSearch from '../../src/commands/sessions/search.js'
import type {SearchMatch} from '../../src/audit/read.js'
import {captureCommand} from '../helpers/capture.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {createTestDatabase, type UpstreamInfo} from '../helpers/pg.js'
import {auditorEnv, localBucketUrl} from './helpers.js'

/**
 * `sessions search` matched the recorded text as the client spelled it. The server reads past
 * comments, runs of blanks and line breaks, and decodes escaped names and strings; so a client
 * that wrote `DROP/**\/TABLE`, `drop⏎⇥table`, `U&"secr\0065t_notes"` or `E'/etc/p\x61sswd'` ran
 * what the auditor searched for, and the search said "No statements match". The search now also
 * matches the text as the scanner reads it, and highlights the recorded text it came from.
 */
const root = path.join(import.meta.dirname, '..', '..')
const savedEnv = {...process.env}

// [what the auditor searches for, statements that the server reads as containing it]
const FAMILIES: [string, string[]][] = [
  ['drop table', ['DROP/**/TABLE IF EXISTS rf_a', 'drop\n\ttable if exists rf_b', 'drop -- nothing to see\n table if exists rf_c', 'drop /* a /* nested */ comment */ table if exists rf_d']],
  ['secret_notes', ['select count(*) from U&"secr\\0065t_notes"', `select count(*) from U&"secr!0065t_notes" UESCAPE '!'`, 'select count(*) from "secr\u0065t_notes" as s']],
  ['/etc/passwd', [`select length(E'/etc/p\\x61sswd')`, `select length('/etc/'\n'passwd')`, `select length(U&'/etc/p\\0061sswd')`, `select length(e'/etc/pa\\163swd')`]],
  ['café', [`select 'cafe\u0301' as label`]],
]

describe('sessions search reads statements as the server does', () => {
  let db: UpstreamInfo
  let t: PipelineTunnel | undefined
  let bucketUrl: string

  beforeAll(async () => {
    // The auditor's cache of this run only, and no configured bucket.
    auditorEnv()
    db = await createTestDatabase('searchform')
    bucketUrl = localBucketUrl('searchform')
    t = await openPipelineTunnel(db, '', {top: `bucket: ${bucketUrl}`})
    const c = await t.client()
    for (const [, statements] of FAMILIES) for (const sql of statements) await c.query(sql).catch(() => undefined)
    // Innocent texts that hold the words, but not as the server reads the search: they must stay out.
    await c.query(`select 'drop' "table"`).catch(() => undefined)
    await c.query(`select 1 as "drop", 2 as "table"`)
    await t.close()
    t = undefined
  })
  afterAll(async () => {
    await t?.close()
    process.env = savedEnv
  })

  const search = async (text: string): Promise<SearchMatch[]> => {
    const r = await captureCommand(() => SessionsSearch.run(['--bucket', bucketUrl, '--json', text], {root}))
    return (JSON.parse(r.stdout) as {matches: SearchMatch[]}).matches
  }

  it.each(FAMILIES)('finds every spelling of %s', async (text, statements) => {
    const found = await search(text)
    for (const sql of statements) {
      const hit = found.find((m) => m.sql === sql)
      expect(hit, `${text} in ${JSON.stringify(sql)}`).toBeDefined()
      // The highlight covers recorded text, and the span is inside it.
      expect(hit!.spans.length).toBeGreaterThan(0)
      for (const [a, b] of hit!.spans) expect(0 <= a && a < b && b <= sql.length).toBe(true)
    }
  })

  it('highlights the recorded words a hit came from', async () => {
    const hit = (await search('drop table')).find((m) => m.sql.startsWith('DROP/**/TABLE'))!
    expect(hit.spans.map(([a, b]) => hit.sql.slice(a, b))).toEqual(['DROP/**/TABLE'])
  })

  it('does not read names or strings as the words of the statement', async () => {
    const found = await search('drop table')
    expect(found.map((m) => m.sql).filter((s) => s.startsWith('select'))).toEqual([])
  })
})
