import path from 'node:path'
import {serialize} from 'pg-protocol'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import SessionsList from '../../src/commands/sessions/list.js'
import SessionsShow from '../../src/commands/sessions/show.js'
import {captureCommand} from '../helpers/capture.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {codes, errorOf, type RawClient} from '../helpers/raw-client.js'
import {auditorEnv, localBucketUrl} from './helpers.js'

/**
 * Every tool that reads a session log (list, show, search, replay, verify, report) refuses a log
 * that inflates past 256 MiB, as unreadable. Statement texts are recorded whole (and their
 * normalized text beside them), so a client that ran `delete from accounts …` and then padded its
 * session with ~130 statements of 1 MiB comments left a log whose every statement, the delete
 * included, no auditor could read: `sessions list` showed only "inflates to more than 256 MiB".
 * A session whose log reaches half that now ends as at a shutdown, with a message, and its log
 * stays readable.
 */
const root = path.join(import.meta.dirname, '..', '..')
const savedEnv = {...process.env}
const MiB = 1024 * 1024
const pad = (i: number) => `select ${i} -- ${'x'.repeat(MiB - 100)}`

describe('a session padded past what the tools read', () => {
  let db: UpstreamInfo
  let t: PipelineTunnel | undefined
  let bucketUrl: string

  beforeAll(async () => {
    auditorEnv()
    db = await createTestDatabase('logbudget')
    await withClient(db.url, (c) => c.query('create table accounts (id int); insert into accounts select generate_series(1, 10)'))
    bucketUrl = localBucketUrl('logbudget')
    t = await openPipelineTunnel(db, '', {top: `bucket: ${bucketUrl}`})
  }, 60_000)
  afterAll(async () => {
    await t?.close()
    process.env = savedEnv
  })

  /** Sends `delete`, then pads with `padding` until the tunnel ends the session (at most 140 times); the error it ended with. */
  const padUntilEnded = async (raw: RawClient, deleteSql: string, padding: (raw: RawClient) => Promise<boolean>): Promise<string | undefined> => {
    raw.send(serialize.query(deleteSql))
    expect(codes(await raw.untilReady())).toBe('CZ')
    for (let i = 0; i < 140; i++) if (!(await padding(raw))) break
    await raw.waitClosed(60_000)
    return errorOf(raw.messages.filter((m) => m.code === 'E').slice(-1))?.message
  }

  it('ends the session, and every statement of its log can be read', async () => {
    // Statement by statement, as simple queries.
    const a = await t!.raw()
    let n = 0
    const endedA = await padUntilEnded(a, 'delete from accounts where id = 3', async (raw) => {
      raw.send(serialize.query(pad(n++)))
      const reply = await raw.untilReady().catch(() => undefined)
      return reply !== undefined && codes(reply) === 'TDCZ'
    })
    expect(endedA).toMatch(/audit log has reached the most dbgate records of one session/)
    // Pipelined in the extended protocol, many in one write.
    const b = await t!.raw()
    const endedB = await padUntilEnded(b, 'delete from accounts where id = 4', async (raw) => {
      raw.send(...Array.from({length: 20}, () => [serialize.parse({text: pad(n++)}), serialize.bind({}), serialize.execute({}), serialize.sync()]).flat())
      for (let i = 0; i < 20; i++) if ((await raw.untilReady().catch(() => undefined)) === undefined) return false
      return true
    })
    expect(endedB).toMatch(/audit log has reached the most dbgate records of one session/)
    await t!.close()
    t = undefined

    const listed = JSON.parse((await captureCommand(() => SessionsList.run(['--bucket', bucketUrl, '--json'], {root}))).stdout) as {sessions: {sessionId: string}[]; unreadable: unknown[]}
    expect(listed.unreadable).toEqual([])
    expect(listed.sessions).toHaveLength(2)
    const shown: string[] = []
    for (const s of listed.sessions) shown.push((await captureCommand(() => SessionsShow.run([s.sessionId, '--bucket', bucketUrl], {root}))).stdout)
    expect(shown.map((s) => s.match(/delete from accounts where id = \d/)?.[0]).sort()).toEqual(['delete from accounts where id = 3', 'delete from accounts where id = 4'])
  }, 300_000)
})
