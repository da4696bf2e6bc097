/**
 * One sign-in, several processes: a person's tunnels, approval screen and CLI commands share one
 * token store, and the IdP rotates refresh tokens with reuse detection (a spent refresh token
 * presented again revokes the grant). Real processes, the real token store, a real oidc-provider.
 */
import {spawn, type ChildProcessWithoutNullStreams} from 'node:child_process'
import {writeFile} from 'node:fs/promises'
import path from 'node:path'
import {createInterface} from 'node:readline'
import {afterAll, afterEach, beforeAll, beforeEach, describe, expect, it} from 'vitest'
import {getIdentity} from '../../src/identity/session.js'
import {storeKey} from '../../src/identity/token-store.js'
import {run} from '../helpers/run.js'
import {fixture, loginAs, type Fixture} from './helpers.js'
import {waitFor} from '../helpers/wait.js'

const DIST = path.resolve('dist')
const BIN = path.resolve('bin/run.js')
const CHILD = path.join(import.meta.dirname, 'fixtures', 'refresh-child.mjs')

interface Child {
  child: ChildProcessWithoutNullStreams
  next(): Promise<Record<string, unknown>>
  send(line: string): void
}

let f: Fixture
const children: ChildProcessWithoutNullStreams[] = []

beforeAll(async () => {
  f = await fixture()
})
afterAll(async () => {
  await f.close()
})
beforeEach(async () => {
  await f.store.remove(storeKey(f.config))
  f.dev.ttl.idToken = 600
  await loginAs(f)
})
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL')
})

function start(): Child {
  const child = spawn(process.execPath, [CHILD, DIST, f.config.issuer, f.config.clientId], {env: {...process.env, ...f.env}, stdio: ['pipe', 'pipe', 'pipe']})
  children.push(child)
  let stderr = ''
  child.stderr.on('data', (d) => (stderr += d))
  const lines: string[] = []
  const waiters: ((line: string) => void)[] = []
  createInterface({input: child.stdout}).on('line', (line) => {
    const w = waiters.shift()
    if (w) w(line)
    else lines.push(line)
  })
  return {
    child,
    next: () =>
      new Promise((resolve, reject) => {
        const take = (line: string) => resolve(JSON.parse(line) as Record<string, unknown>)
        const early = lines.shift()
        if (early !== undefined) return take(early)
        waiters.push(take)
        child.once('exit', (code) => reject(new Error(`child exited (${code}): ${stderr}`)))
      }),
    send: (line) => child.stdin.write(`${line}\n`),
  }
}

/**
 * Waits until the clock is past the whole second every token so far was issued in (`iat` has
 * whole seconds), so that a request made now needs a token issued after it.
 */
async function nextWholeSecond(): Promise<void> {
  const issuedBy = Math.floor(Date.now() / 1000)
  await waitFor(() => Math.floor(Date.now() / 1000) > issuedBy, 'the clock is in a later second than any token issued so far', {intervalMs: 10})
}

/** Whether the sign-in still works for a new process: its grant was not revoked along the way. */
async function stillSignedIn(): Promise<unknown> {
  const session = await getIdentity(f.config, {store: f.store, env: f.env})
  return (await session.refresh()).identity.subject
}

describe('refreshing one sign-in from several processes at once', () => {
  it('N processes that all hold the same tokens renew at the same moment, and everyone stays signed in', async () => {
    const n = 5
    const procs = Array.from({length: n}, start)
    expect(await Promise.all(procs.map((p) => p.next()))).toEqual(Array(n).fill({ready: true}))
    for (const p of procs) p.send('refresh')
    const results = await Promise.all(procs.map((p) => p.next()))
    expect(results).toEqual(Array(n).fill({ok: true, subject: 'alice'}))
    // And again: each process now holds different tokens, some already superseded.
    for (const p of procs) p.send('refresh')
    expect(await Promise.all(procs.map((p) => p.next()))).toEqual(Array(n).fill({ok: true, subject: 'alice'}))
    expect(await stillSignedIn()).toBe('alice')
  })

  it('a reviewer approves in the approval screen while denying in another terminal, then approves again', async () => {
    const screen = start() // `dbgate approve`: signed in when it opened, deciding later
    expect(await screen.next()).toEqual({ready: true})
    // Decisions need a token issued after the request: both processes must renew.
    await nextWholeSecond() // a token's iat has whole seconds
    const requestTime = new Date().toISOString()
    const deny = start() // `dbgate deny` in another terminal
    expect(await deny.next()).toEqual({ready: true})
    screen.send(`fresh ${requestTime}`)
    deny.send(`fresh ${requestTime}`)
    expect(await Promise.all([screen.next(), deny.next()])).toEqual([
      {ok: true, subject: 'alice'},
      {ok: true, subject: 'alice'},
    ])
    await nextWholeSecond()
    screen.send(`fresh ${new Date().toISOString()}`)
    expect(await screen.next()).toEqual({ok: true, subject: 'alice'})
    expect(await stillSignedIn()).toBe('alice')
  })

  it('the built CLI: several commands started together with a sign-in about to expire all work', async () => {
    // ID tokens of 30 s are inside the one-minute refresh margin: every command renews first.
    f.dev.ttl.idToken = 30
    await f.store.remove(storeKey(f.config))
    await loginAs(f)
    const configFile = path.join(f.dir, 'dbgate.yaml')
    await writeFile(configFile, `identity:\n  issuer: ${f.config.issuer}\n  clientId: ${f.config.clientId}\ntargets:\n  app: {host: 127.0.0.1, database: app, user: app}\n`)
    const runs = await Promise.all(Array.from({length: 4}, () => run('node', [BIN, 'whoami', '--json', '--config', configFile], {env: f.env})))
    for (const r of runs) {
      expect(r.stderr).not.toMatch(/revoked|not signed in/)
      expect(r.code).toBe(0)
      expect(JSON.parse(r.stdout)).toMatchObject({subject: 'alice'})
    }
    f.dev.ttl.idToken = 600
    expect(await stillSignedIn()).toBe('alice')
  })
})

describe('the refresh lock', () => {
  it('is recovered from when the process holding it died', async () => {
    const {withFileLock} = await import('../../src/identity/refresh-lock.js')
    const file = path.join(f.dir, 'dead.lock')
    // A lock left by a process that no longer exists (pid 2^22 + 1 is above Linux's pid_max default).
    await writeFile(file, JSON.stringify({pid: 4_194_305, host: (await import('node:os')).hostname(), nonce: 'x', at: Date.now()}))
    await expect(withFileLock(file, async () => 'ran', {waitMs: 2000})).resolves.toBe('ran')
  })
})
