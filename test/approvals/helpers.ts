import {randomBytes} from 'node:crypto'
import {mkdtempSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {stripVTControlCharacters} from 'node:util'
import {render} from 'ink-testing-library'
import type pg from 'pg'
import {createElement} from 'react'
import {expect} from 'vitest'
import {formatRequestDetail} from '../../src/approvals/cli.js'
import {reviewerFromSession, type Reviewer} from '../../src/approvals/review.js'
import type {ApprovalRequest} from '../../src/approvals/types.js'
import {openBucket, type Bucket} from '../../src/bucket/index.js'
import type {DbgateConfig} from '../../src/config/types.js'
import {buildTunnelHooks} from '../../src/pipeline/index.js'
import {DEV_USERS, type DevUser} from '../../src/dev/oidc-dev-provider.js'
import {getIdentity} from '../../src/identity/session.js'
import {openTokenStore} from '../../src/identity/token-store.js'
import {Detail} from '../../src/tui/approvals/App.js'
import {decodeNotice} from '../../src/wire/backend.js'
import {fixture, loginAs, type Fixture} from '../identity/helpers.js'
import {waitFor} from '../helpers/wait.js'
import type {RawClient, RawMessage} from '../helpers/raw-client.js'
import {loadedConfig, openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'

/** The dev users plus dave (engineering and dba: may request and review) and erin (a second dba). */
export const APPROVAL_USERS: readonly DevUser[] = [
  ...DEV_USERS,
  {id: 'dave', password: 'dave', email: 'dave@example.com', name: 'Dave Example', groups: ['engineering', 'dba']},
  {id: 'erin', password: 'erin', email: 'erin@example.com', name: 'Erin Example', groups: ['dba']},
]

export interface People {
  f: Fixture
  /** Each user's own token store, as on their own machine. */
  env(user: string): NodeJS.ProcessEnv
  login(user: string): Promise<void>
  reviewer(user: string): Promise<Reviewer>
  close(): Promise<void>
}

export async function people(): Promise<People> {
  const f = await fixture({users: APPROVAL_USERS})
  const envs = new Map<string, NodeJS.ProcessEnv>()
  const env = (user: string) => {
    let e = envs.get(user)
    if (!e) {
      e = {DBGATE_KEYRING: 'off', XDG_CONFIG_HOME: path.join(f.dir, `home-${user}`)}
      envs.set(user, e)
    }
    return e
  }
  return {
    f,
    env,
    async login(user) {
      const e = env(user)
      await loginAs({...f, env: e, store: openTokenStore({env: e})}, {user})
    },
    async reviewer(user) {
      const e = env(user)
      return reviewerFromSession(await getIdentity(f.config, {env: e, store: openTokenStore({env: e})}))
    },
    close: () => f.close(),
  }
}

/** A database, a file bucket, the target's configuration as reviewers load it, and a tunnel whose requester is signed in. */
export interface ApprovalSetting {
  p: People
  db: UpstreamInfo
  bucketUrl: string
  bucket: Bucket
  config: DbgateConfig
  t: PipelineTunnel
  close(): Promise<void>
}

/**
 * `target` (the target's YAML lines) on a new database `database`, with a tunnel that signs in as
 * `requester` and polls decisions every 100 ms; `others` are signed in too (reviewers, usually).
 */
export async function approvalSetting(opts: {database: string; target: string; requester: string; others?: readonly string[]; loginRole?: string; server?: string}): Promise<ApprovalSetting> {
  const p = await people()
  const db = await createTestDatabase(opts.database, opts.server)
  const login = opts.loginRole ? await loginRole(db, opts.loginRole) : db
  const bucketUrl = tempBucketUrl()
  const bucket = openBucket(bucketUrl)
  const config = loadedConfig(db, opts.target, `identity:\n  issuer: ${p.f.dev.issuer}\n  clientId: ${p.f.dev.cliClientId}\nbucket: ${bucketUrl}`).config
  for (const u of [opts.requester, ...(opts.others ?? [])]) await p.login(u)
  const t = await openPipelineTunnel(login, opts.target, {
    top: `bucket: ${bucketUrl}`,
    identity: {issuer: p.f.dev.issuer, clientId: p.f.dev.cliClientId, env: p.env(opts.requester)},
    hooks: (ctx) => buildTunnelHooks({...ctx, approvalPollMs: 100}),
  })
  return {
    p,
    db,
    bucketUrl,
    bucket,
    config,
    t,
    async close() {
      await t.close().catch(() => {})
      await p.close()
    },
  }
}

/**
 * A role `name` of the database's (no superuser, no pg_read_all_settings), owning its public
 * schema, for a tunnel that logs in as an ordinary application role; `db.url` stays the superuser's.
 */
async function loginRole(db: UpstreamInfo, name: string): Promise<UpstreamInfo> {
  const password = randomBytes(12).toString('hex')
  await withClient(db.url, async (c) => {
    await c.query(`create role ${name} login password '${password}'`)
    await c.query(`alter schema public owner to ${name}`)
  })
  const url = new URL(db.url)
  url.username = name
  url.password = password
  return {...db, user: name, password, url: url.toString()}
}

export function tempBucketUrl(): string {
  return `file://${mkdtempSync(path.join(tmpdir(), 'dbgate-approvals-'))}`
}

/** Collects a client's notices and returns the approval id once the tunnel says it is waiting. */
export function watchNotices(c: pg.Client): {notices: string[]; approvalId(): Promise<string>} {
  const notices: string[] = []
  c.on('notice', (n) => notices.push(n.message ?? ''))
  return {
    notices,
    async approvalId() {
      const find = () => notices.map((n) => /waiting for approval (apr-[a-z0-9]+)/.exec(n)?.[1]).find(Boolean)
      await waitFor(() => find() !== undefined, 'the tunnel says the statement waits for approval')
      return find()!
    },
  }
}


/** What a reviewer reads of a request: the interactive view's detail pane and `dbgate approvals show`, whitespace folded. */
export function shownToReviewer(request: ApprovalRequest): string[] {
  const view = {request, state: 'pending' as const}
  const ui = render(createElement(Detail, {view, now: new Date()}))
  const frame = stripVTControlCharacters(ui.lastFrame() ?? '').replace(/[│╭╮╰╯─]/g, '').replace(/\s+/g, ' ')
  ui.unmount()
  return [frame, formatRequestDetail(view).replace(/\s+/g, ' ')]
}

/** Sends `messages` on a wire client, waits until the tunnel holds the statement, and gives its request's id. */
export async function heldOnWire(raw: RawClient, ...messages: Buffer[]): Promise<string> {
  raw.send(...messages)
  const seen: RawMessage[] = []
  let id: string | undefined
  await waitFor(async () => {
    const m = await raw.next()
    seen.push(m)
    if (m.code === 'N') id ??= /waiting for approval (apr-[a-z0-9]+)/.exec(decodeNotice(m.body).message)?.[1]
    return id !== undefined || m.code === 'Z'
  }, 'held')
  expect(id, seen.filter((m) => m.code === 'E').map((m) => JSON.stringify(decodeNotice(m.body))).join('; ')).toBeDefined()
  return id!
}

/** Reads a wire client up to its next ReadyForQuery and gives the error messages on the way. */
export async function errorsUntilReady(raw: RawClient): Promise<string[]> {
  const after: RawMessage[] = []
  await waitFor(async () => {
    const m = await raw.next()
    after.push(m)
    return m.code === 'Z'
  }, 'answered')
  return after.filter((m) => m.code === 'E').map((m) => decodeNotice(m.body).message)
}
