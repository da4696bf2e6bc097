import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {SearchMatch} from '../../src/audit/read.js'
import SessionsSearch from '../../src/commands/sessions/search.js'
import {captureCommand} from '../helpers/capture.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {auditorEnv, localBucketUrl} from './helpers.js'

/**
 * `prepare wipe as delete from carts …` runs nothing; `execute wipe` deletes, and its text says only
 * that. A search for `delete from carts` found the PREPARE and not the EXECUTE, so the auditor read
 * that the delete was prepared and never run. An EXECUTE now matches by the PREPARE text it ran (as
 * the report reads it), defined before it in the same session, until a DEALLOCATE that ran.
 */
const root = path.join(import.meta.dirname, '..', '..')
const savedEnv = {...process.env}

describe('sessions search and the statements an EXECUTE runs', () => {
  let db: UpstreamInfo
  let t: PipelineTunnel | undefined
  let bucketUrl: string

  beforeAll(async () => {
    auditorEnv()
    db = await createTestDatabase('searchprepared')
    await withClient(db.url, (c) => c.query('create table carts (id int primary key); insert into carts select generate_series(1, 10)'))
    bucketUrl = localBucketUrl('searchprepared')
    t = await openPipelineTunnel(db, '', {top: `bucket: ${bucketUrl}`})
    const c = await t.client()
    for (const sql of [
      'prepare wipe (int) as delete from carts where id > $1',
      'select 1 as between_them',
      'EXECUTE wipe(8)',
      'execute wipe (5); select 2 as after_it',
      'deallocate wipe',
      'prepare wipe (int) as select $1 as harmless',
      'execute wipe(1)',
    ]) await c.query(sql)
    await t.close()
    t = undefined
    expect(await withClient(db.url, async (d) => (await d.query('select count(*)::int n from carts')).rows[0].n)).toBe(5)
  }, 60_000)
  afterAll(async () => {
    await t?.close()
    process.env = savedEnv
  })

  it('finds the EXECUTEs of a prepared delete by what they ran, and not an EXECUTE of the name prepared again', async () => {
    const r = await captureCommand(() => SessionsSearch.run(['--bucket', bucketUrl, '--json', 'delete from carts'], {root}))
    const found = (JSON.parse(r.stdout) as {matches: SearchMatch[]}).matches
    expect(found.map((m) => m.sql)).toEqual(['prepare wipe (int) as delete from carts where id > $1', 'EXECUTE wipe(8)', 'execute wipe (5); select 2 as after_it'])
    // Each says what it ran.
    for (const m of found.slice(1)) expect(m.runs).toEqual(['prepare wipe (int) as delete from carts where id > $1'])
    expect(found[0]!.runs).toBeUndefined()
  })
})
