import {spawn, type ChildProcess} from 'node:child_process'
import {readFileSync} from 'node:fs'
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {createInterface} from 'node:readline'
import pg from 'pg'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {IDLE_MEMORY_POLICY, NEW_SPACE_INITIAL, afterRelease, idleMemoryReleaseWanted, initialIdleState, nextIdleStep, type HeapReading, type IdleState} from '../../src/runtime/idle-memory.js'
import {run} from '../helpers/run.js'
import {createTestDatabase, type UpstreamInfo} from '../helpers/pg.js'
import {waitFor} from '../helpers/wait.js'

const MiB = 1024 * 1024
const BIN = path.resolve('bin/run.js')

const grown: HeapReading = {newSpace: 32 * MiB, heapCommitted: 70 * MiB, heapUsed: 30 * MiB}
const small: HeapReading = {newSpace: 1 * MiB, heapCommitted: 40 * MiB, heapUsed: 30 * MiB}

/** The event loop's utilization over a tick, the heap at its end, and (if it releases) the heap right after; by default the release changed nothing. */
type Tick = [utilization: number, heap: HeapReading, afterRelease?: HeapReading]

/** Runs ticks from `state`; returns the tick numbers (1-based) that released, and the state after. */
function ticks(state: IdleState, steps: Tick[]): {released: number[]; state: IdleState} {
  const released: number[] = []
  steps.forEach(([utilization, heap, after], i) => {
    const step = nextIdleStep(state, utilization, heap)
    state = step.state
    if (step.release) {
      released.push(i + 1)
      state = afterRelease(state, after ?? heap)
    }
  })
  return {released, state}
}
const repeat = (n: number, x: Tick): Tick[] => Array.from({length: n}, () => x)

describe('the idle memory decision', () => {
  const start = initialIdleState(small)
  const W = IDLE_MEMORY_POLICY.windowTicks

  it('releases once the process has been quiet for a whole window, not before, and not while busy', () => {
    expect(W).toBe(6)
    expect(ticks(start, repeat(6, [0.001, grown])).released).toEqual([6])
    // Busy ticks (traffic) for as long as you like: never.
    expect(ticks(start, repeat(60, [0.3, grown])).released).toEqual([])
    // Moderate traffic, no tick a burst but the mean just over the threshold: traffic.
    expect(ticks(start, repeat(60, [IDLE_MEMORY_POLICY.quietUtilization + 0.001, grown])).released).toEqual([])
    // Just under it: quiet.
    expect(ticks(start, repeat(6, [IDLE_MEMORY_POLICY.quietUtilization - 0.001, grown])).released).toEqual([6])
    // One burst starts the count again.
    expect(ticks(start, [...repeat(5, [0, grown]), [0.5, grown], ...repeat(6, [0, grown])]).released).toEqual([12])
  })

  it('is not kept from releasing by housekeeping: one busier tick every five seconds', () => {
    // A tunnel with a thousand idle sessions checkpoints their recordings every 5 s (3–12 % of a tick).
    const housekeeping: Tick[] = Array.from({length: 30}, (_, i) => [i % 5 === 4 ? 0.12 : 0.0003, grown] as Tick)
    expect(ticks(start, housekeeping).released[0]).toBe(6)
  })

  it('does nothing when there is nothing to give back', () => {
    expect(ticks(start, repeat(60, [0, small])).released).toEqual([])
    // Just under the young generation's margin over its floor: still nothing.
    const almost = {...small, newSpace: small.newSpace + IDLE_MEMORY_POLICY.newSpaceExcess - 1}
    expect(ticks(start, repeat(60, [0, almost])).released).toEqual([])
    // A slack heap (much committed, little used) with a small young generation: one release, no retries.
    const slack = {newSpace: 1 * MiB, heapCommitted: 80 * MiB, heapUsed: 30 * MiB}
    expect(ticks(start, repeat(60, [0, slack])).released).toEqual([6])
    // Slack, but less than half of what is used: not worth a full collection.
    expect(ticks(start, repeat(60, [0, {newSpace: 1 * MiB, heapCommitted: 200 * MiB, heapUsed: 180 * MiB}])).released).toEqual([])
  })

  it('retries a bounded number of times while the young generation stays grown, then waits for traffic', () => {
    const stuck = ticks(start, repeat(120, [0, grown]))
    expect(stuck.released).toEqual([6, 12, 18])
    // Traffic comes and goes: one more quiet spell, one more round.
    const again = ticks(stuck.state, [[0.4, grown], ...repeat(6, [0, grown])])
    expect(again.released).toEqual([7])
    // Once it shrank, the retries are not needed.
    expect(ticks(start, [...repeat(6, [0, grown]), ...repeat(60, [0, small])]).released).toEqual([6])
  })

  it('once a release shrank the young generation, does not collect again in that quiet spell when V8 grows it a step', () => {
    // Measured under load: 32 MB -> 2 MB at the release, then a step back up to 4 MB with no traffic.
    const stepUp = {...small, newSpace: 4 * MiB}
    const spell = ticks(start, [...repeat(5, [0, grown]), [0, grown, small], ...repeat(60, [0, stepUp])])
    expect(spell.released).toEqual([6])
    // Traffic, then quiet again, with the young generation grown: a release as usual.
    expect(ticks(spell.state, [[0.4, grown], ...repeat(6, [0, grown])]).released).toEqual([7])
  })

  it('counts the young generation as grown from its initial size, even when the watch starts with it grown', () => {
    // A gateway loads its parser and configuration before the watch starts: already at its maximum.
    const tight = {...grown, heapUsed: grown.heapCommitted - 10 * MiB}
    expect(initialIdleState(tight).newSpaceFloor).toBe(NEW_SPACE_INITIAL)
    expect(ticks(initialIdleState(tight), repeat(6, [0, tight])).released).toEqual([6])
    // A smaller reading lowers the floor.
    expect(initialIdleState({...small, newSpace: 512 * 1024}).newSpaceFloor).toBe(512 * 1024)
    // A platform whose young generation shrinks only to 2 MB: within the margin, so not "grown".
    const two = {...small, newSpace: 2 * MiB}
    expect(ticks(initialIdleState(two), repeat(60, [0, two])).released).toEqual([])
  })
})

/** The kernel's word on a process's resident memory. */
function rssOf(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return Number(m![1]) * 1024
}

const RELEASE = /idle: collected garbage to give memory back: V8 heap ([\d.]+) MB → ([\d.]+) MB, young generation ([\d.]+) MB → ([\d.]+) MB, RSS ([\d.]+) MB → ([\d.]+) MB; paused ([\d.]+) ms \(full collection [\d.]+ ms\)/g

/** The real binary, real load through its tunnel, then quiet. */
describe('DBGATE_IDLE_MEMORY_RELEASE', () => {
  it('is on unless set off; any other value is an error naming the variable and the fix', () => {
    expect(idleMemoryReleaseWanted({})).toBe(true)
    for (const v of ['', 'on', '1', 'true', 'YES']) expect(idleMemoryReleaseWanted({DBGATE_IDLE_MEMORY_RELEASE: v}), v).toBe(true)
    for (const v of ['off', '0', 'false', 'No', ' OFF ']) expect(idleMemoryReleaseWanted({DBGATE_IDLE_MEMORY_RELEASE: v}), v).toBe(false)
    for (const v of ['of', 'disabled', '2']) {
      expect(() => idleMemoryReleaseWanted({DBGATE_IDLE_MEMORY_RELEASE: v}), v).toThrow(`DBGATE_IDLE_MEMORY_RELEASE is ${JSON.stringify(v)}, which is neither on nor off`)
    }
  })

  it('mistyped, stops dbgate connect before it opens anything: exit 2 and the fix', async () => {
    const r = await run('node', [BIN, 'connect', 'prod'], {env: {...process.env, DBGATE_IDLE_MEMORY_RELEASE: 'of', NO_COLOR: '1'}})
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/DBGATE_IDLE_MEMORY_RELEASE is "of", which is neither on nor off/)
    expect(r.stderr).toMatch(/Set DBGATE_IDLE_MEMORY_RELEASE=off/)
  })
})

describe('dbgate connect gives memory back once its clients go quiet', () => {
  let db: UpstreamInfo
  let dir: string
  let child: ChildProcess | undefined
  let stderr = ''
  beforeAll(async () => {
    db = await createTestDatabase('idlemem')
    dir = await mkdtemp(path.join(tmpdir(), 'dbgate-idlemem-'))
    await writeFile(
      path.join(dir, 'dbgate.yaml'),
      `targets:\n  app:\n    host: ${db.host}\n    port: ${db.port}\n    database: ${db.database}\n    user: ${db.user}\n    password: env:APP_DB_PASSWORD\n    tls: disable\n`,
    )
  })
  afterAll(async () => {
    if (child && child.exitCode === null) {
      const exited = new Promise((resolve) => child!.once('exit', resolve))
      child.kill('SIGTERM')
      await exited
    }
    await rm(dir, {recursive: true, force: true})
  })

  const releases = () => [...stderr.matchAll(RELEASE)].map((m) => ({heapBefore: Number(m[1]), heapAfter: Number(m[2]), youngBefore: Number(m[3]), youngAfter: Number(m[4]), rssBefore: Number(m[5]), rssAfter: Number(m[6]), pauseMs: Number(m[7])}))

  it('not while statements flow; once they stop, shrinks the young generation and RSS falls, and stops there', {timeout: 150_000}, async () => {
    const env = {...process.env, APP_DB_PASSWORD: db.password, DBGATE_CONFIG: '', XDG_CONFIG_HOME: path.join(dir, 'xdg'), XDG_DATA_HOME: path.join(dir, 'data'), XDG_STATE_HOME: path.join(dir, 'state'), DBGATE_IDLE_MEMORY_RELEASE: undefined, NO_COLOR: '1'}
    child = spawn(process.execPath, [BIN, 'connect', 'app', '--json', '-v', '--config', path.join(dir, 'dbgate.yaml')], {cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe']})
    child.stderr!.on('data', (d) => (stderr += d))
    const line = await new Promise<string>((resolve) => createInterface({input: child!.stdout!}).once('line', resolve))
    const {url} = JSON.parse(line) as {url: string}

    // Load: eight clients of short statements and large results, enough for V8 to grow the young generation.
    // The tunnel reads, masks and records rows with little garbage now, so each short statement gets
    // a text of its own (a column name): a new text is parsed and analysed, which is what allocates,
    // and its analysis stays cached, which is what survives collections and makes V8 grow the young
    // generation. Twelve computed columns make each analysis large enough that this holds however
    // little else the tunnel allocates.
    const columns = Array.from({length: 12}, (_, k) => `$1::int + ${k} as c${k}`).join(', ')
    const clients = await Promise.all(Array.from({length: 8}, async () => {
      const c = new pg.Client({connectionString: url})
      await c.connect()
      return c
    }))
    await Promise.all(clients.map(async (c, i) => {
      for (let n = 0; n < 400; n++) await c.query(`select $1::int as n_${i}_${n}, md5($1::text) as h, ${columns}`, [n * 8 + i])
      const big = await c.query("select g, md5(g::text) as h, repeat('x', 40) as pad from generate_series(1, 40000) g")
      expect(big.rowCount).toBe(40000)
    }))
    await Promise.all(clients.slice(1).map((c) => c.end()))

    // Statements keep flowing, one after another, for three times the quiet spell the release waits for: nothing.
    // Each is a new text too: a repeated one allocates so little that V8 itself would shrink the
    // young generation for low allocation throughput, and there would be nothing left to release.
    const busyUntil = Date.now() + 3 * IDLE_MEMORY_POLICY.windowTicks * IDLE_MEMORY_POLICY.tickMs
    let statements = 0
    while (Date.now() < busyUntil) {
      await clients[0]!.query(`select $1::int as busy_${statements}, md5($1::text) as h, ${columns}`, [statements++])
    }
    expect(releases()).toEqual([])
    const rssLoaded = rssOf(child.pid!)
    await clients[0]!.end()

    // Quiet: the release comes (bounded polling; it is due six quiet seconds in, with up to two retries
    // six seconds apart should V8 keep the young generation at the first).
    const shrunk = (r: ReturnType<typeof releases>[number]) => r.youngAfter <= r.youngBefore / 4
    await waitFor(() => releases().some(shrunk), () => `a release that shrank the young generation in the log; stderr:\n${stderr.slice(-2000)}`, {timeoutMs: 60_000, intervalMs: 250})
    const first = releases().find(shrunk)!
    expect(first.youngBefore).toBeGreaterThanOrEqual(8)
    expect(first.heapAfter).toBeLessThan(first.heapBefore)
    // What the kernel says, not only what the process says of itself.
    const given = first.youngBefore - first.youngAfter
    await waitFor(() => rssOf(child!.pid!) < rssLoaded - (given / 2) * MiB, () => `RSS to fall by half the young generation given back (${given} MB) from ${(rssLoaded / MiB).toFixed(1)} MB; now ${(rssOf(child!.pid!) / MiB).toFixed(1)} MB`, {timeoutMs: 10_000, intervalMs: 250})

    // The attempts of this quiet spell end once one leaves the young generation at its floor (a
    // shrink to a quarter may still leave it a step above, e.g. 32 -> 4 MB, which is worth one more
    // attempt), or after the last attempt.
    const grownMb = (NEW_SPACE_INITIAL + IDLE_MEMORY_POLICY.newSpaceExcess) / MiB
    const settledAt = (r: ReturnType<typeof releases>[number]) => r.youngAfter < grownMb
    const shown = () => JSON.stringify(releases())
    await waitFor(() => releases().some(settledAt) || releases().length >= IDLE_MEMORY_POLICY.maxAttempts, () => `a release that left the young generation under ${grownMb} MB, or ${IDLE_MEMORY_POLICY.maxAttempts} releases; releases: ${shown()}`, {timeoutMs: 30_000, intervalMs: 250})
    const spell = releases()
    // A retry only ever follows a release that left the young generation grown.
    for (const r of spell.slice(0, -1)) expect(r.youngAfter, shown()).toBeGreaterThanOrEqual(grownMb)
    expect(spell.length, shown()).toBeLessThanOrEqual(IDLE_MEMORY_POLICY.maxAttempts)

    // Quiet goes on (two more quiet spells): no collection for nothing. On a loaded machine one
    // housekeeping tick can read as traffic and start a new spell, so a later release may come,
    // but only with a young generation grown again to give back.
    await new Promise((r) => setTimeout(r, 2 * IDLE_MEMORY_POLICY.windowTicks * IDLE_MEMORY_POLICY.tickMs + 1000))
    for (const r of releases().slice(spell.length)) expect(r.youngBefore, shown()).toBeGreaterThanOrEqual(grownMb)
  })
})
