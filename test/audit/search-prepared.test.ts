import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {SearchMatch} from '../../src/audit/read.js'
import {serialize} from 'pg-protocol'
import {errorOf} from '../helpers/raw-client.js'
import SessionsList from '../../src/commands/sessions/list.js'
import SessionsSearch from '../../src/commands/sessions/search.js'
import SessionsShow from '../../src/commands/sessions/show.js'
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
    // Made by a protocol Parse, which the log does not record on its own, and run by SQL: directly, and through another.
    const raw = await t.raw()
    raw.send(serialize.parse({name: 'purge', text: 'delete from carts where id > $1', types: [23]}), serialize.parse({name: 'purge_all', text: 'execute purge(3)'}), serialize.sync())
    await raw.untilReady()
    for (const sql of ['execute purge(4)', 'execute purge_all']) {
      raw.send(serialize.query(sql))
      expect(errorOf(await raw.untilReady()), sql).toBeUndefined()
    }
    await t.close()
    t = undefined
    expect(await withClient(db.url, async (d) => (await d.query('select count(*)::int n from carts')).rows[0].n)).toBe(3)
  }, 60_000)
  afterAll(async () => {
    await t?.close()
    process.env = savedEnv
  })

  it('finds the EXECUTEs of a prepared delete by what they ran, and not an EXECUTE of the name prepared again', async () => {
    const r = await captureCommand(() => SessionsSearch.run(['--bucket', bucketUrl, '--json', 'delete from carts'], {root}))
    // The session of the statements a protocol Parse made is the next test's.
    const found = (JSON.parse(r.stdout) as {matches: SearchMatch[]}).matches.filter((m) => !m.sql.includes('purge'))
    expect(found.map((m) => m.sql)).toEqual(['prepare wipe (int) as delete from carts where id > $1', 'EXECUTE wipe(8)', 'execute wipe (5); select 2 as after_it'])
    // Each says what it ran.
    for (const m of found.slice(1)) expect(m.runs).toEqual(['prepare wipe (int) as delete from carts where id > $1'])
    expect(found[0]!.runs).toBeUndefined()
  })

  it('finds an EXECUTE of a statement a protocol Parse made by its text, recorded with it, and shows it', async () => {
    const r = await captureCommand(() => SessionsSearch.run(['--bucket', bucketUrl, '--json', 'delete from carts where id >'], {root}))
    const found = (JSON.parse(r.stdout) as {matches: SearchMatch[]}).matches.filter((m) => m.sql !== 'prepare wipe (int) as delete from carts where id > $1')
    // Newest session first: the one that ran them came after the one with the PREPARE.
    expect(found.map((m) => [m.sql, m.runs])).toEqual([
      ['execute purge(4)', ['delete from carts where id > $1']],
      ['execute purge_all', ['execute purge(3)', 'delete from carts where id > $1']],
      ['EXECUTE wipe(8)', ['prepare wipe (int) as delete from carts where id > $1']],
      ['execute wipe (5); select 2 as after_it', ['prepare wipe (int) as delete from carts where id > $1']],
    ])
    const {sessions} = JSON.parse((await captureCommand(() => SessionsList.run(['--bucket', bucketUrl, '--json'], {root}))).stdout) as {sessions: {sessionId: string}[]}
    const shown = (await captureCommand(() => SessionsShow.run([sessions[0]!.sessionId, '--bucket', bucketUrl], {root}))).stdout
    expect(shown).toMatch(/ {4}execute purge_all\n {4}which executes purge_all:\n {6}execute purge\(3\)\n {4}which executes purge:\n {6}delete from carts where id > \$1\n/)
  })
})
