/**
 * A process that runs tunnels gives its memory back once it goes quiet after load.
 *
 * Under load V8 grows the young generation to its maximum (2 × 16 MB on a machine with a few GB)
 * and keeps it committed and resident for the life of the process; its own memory reducer did not
 * run in 20 s of idleness (docs/performance-history.md, "Idle memory after load" and "Idle memory: giving
 * the young generation back"). This module watches the event loop and the heap once a second and, after a quiet
 * spell, runs a full collection and a scavenge: with V8's allocation rate low, the young generation
 * shrinks to its initial size at them and its pages are unmapped.
 *
 * The decision (`nextIdleStep`) is a pure function of what one tick reads; `startIdleMemoryRelease`
 * is the thin edge: the timer, the readings, and the collections.
 */
import {performance, type EventLoopUtilization} from 'node:perf_hooks'
import v8 from 'node:v8'
import vm from 'node:vm'

const MiB = 1024 * 1024

export interface IdleMemoryPolicy {
  /** How often the event loop and the heap are read. */
  tickMs: number
  /** The ticks judged together: a release needs this many quiet ones in a row. */
  windowTicks: number
  /** One tick with the event loop this busy is traffic. */
  burstUtilization: number
  /** The event loop's mean utilization over the window must stay below this. */
  quietUtilization: number
  /** Releases tried in one quiet spell when the young generation stays above its floor… */
  maxAttempts: number
  /** …this many quiet ticks apart. */
  retryTicks: number
  /** The young generation counts as grown when it is committed this far above its floor. */
  newSpaceExcess: number
  /** The heap counts as slack when it is committed this far above what it uses… */
  heapSlack: number
  /** …and at least this share of what it uses. */
  heapSlackRatio: number
}

/**
 * Why these values (for a daemon, not for a benchmark):
 * - one reading a second costs microseconds, and a release is worth doing seconds after load ends,
 *   not milliseconds;
 * - quiet is judged over six seconds: traffic with pauses shorter than that would grow the young
 *   generation straight back, and a statement that arrives during a release waits for it;
 * - quiet is not "nothing runs": a tunnel with a thousand idle sessions checkpoints their
 *   recordings every 5 s (3–12 % of one second, measured), so one tick may be busy. Traffic is a
 *   tick over 25 %, or the six-second mean over 5 % (a few hundred statements a second);
 * - three attempts at most, six quiet seconds apart, the later two only while the young generation
 *   is still grown after the one before (the collections shrink it only when V8's own allocation
 *   rate is low, which a collection inside the quiet spell, or housekeeping, can spoil); then
 *   nothing until there has been traffic again;
 * - "something to give back": the young generation 2 MB above its floor, or the heap committed
 *   16 MB and 50 % above what it uses: below that a full collection's pause buys little.
 */
export const IDLE_MEMORY_POLICY: IdleMemoryPolicy = {
  tickMs: 1000,
  windowTicks: 6,
  burstUtilization: 0.25,
  quietUtilization: 0.05,
  maxAttempts: 3,
  retryTicks: 6,
  newSpaceExcess: 2 * MiB,
  heapSlack: 16 * MiB,
  heapSlackRatio: 0.5,
}

/** What one tick reads of the V8 heap. */
export interface HeapReading {
  /** The young generation's committed size (`new_space` of `v8.getHeapSpaceStatistics()`). */
  newSpace: number
  /** The V8 heap's committed size (`total_heap_size`). */
  heapCommitted: number
  /** What the V8 heap holds (`used_heap_size`). */
  heapUsed: number
}

export interface IdleState {
  /** The event loop's utilization (0…1) over each of the last `windowTicks` ticks, oldest first. */
  recent: number[]
  /** Releases run since the last traffic. */
  attempts: number
  /** Quiet ticks since the last release. */
  sinceAttempt: number
  /** What the young generation is when not grown: V8's initial size, or the smallest seen if smaller. */
  newSpaceFloor: number
}

/**
 * V8's initial young generation on 64-bit platforms (two 512 KB semi-spaces), which it shrinks back
 * to. A process may start the watch with it already grown (a gateway loads its parser and its
 * configuration first), so the floor starts here rather than at the first reading; the margin
 * (`newSpaceExcess`) covers a platform whose floor is a little higher.
 */
export const NEW_SPACE_INITIAL = 1024 * 1024

export function initialIdleState(first: HeapReading): IdleState {
  return {recent: [], attempts: 0, sinceAttempt: 0, newSpaceFloor: Math.min(first.newSpace, NEW_SPACE_INITIAL)}
}

export function newSpaceGrown(heap: HeapReading, state: IdleState, policy: IdleMemoryPolicy): boolean {
  return heap.newSpace >= state.newSpaceFloor + policy.newSpaceExcess
}

export function heapSlack(heap: HeapReading, policy: IdleMemoryPolicy): boolean {
  const slack = heap.heapCommitted - heap.heapUsed
  return slack >= policy.heapSlack && slack >= heap.heapUsed * policy.heapSlackRatio
}

/** Whether the window shows traffic (see IDLE_MEMORY_POLICY for the thresholds). */
export function trafficIn(recent: readonly number[], policy: IdleMemoryPolicy): boolean {
  const mean = recent.reduce((sum, u) => sum + u, 0) / (recent.length || 1)
  return recent.some((u) => u >= policy.burstUtilization) || mean >= policy.quietUtilization
}

/**
 * One tick: `utilization` is the event loop's over the tick (0…1), `heap` the reading at its end.
 * `release` says to run the collections now.
 */
export function nextIdleStep(state: IdleState, utilization: number, heap: HeapReading, policy: IdleMemoryPolicy = IDLE_MEMORY_POLICY): {state: IdleState; release: boolean} {
  const recent = [...state.recent, utilization].slice(-policy.windowTicks)
  const newSpaceFloor = Math.min(state.newSpaceFloor, heap.newSpace)
  if (trafficIn(recent, policy)) return {state: {recent, attempts: 0, sinceAttempt: 0, newSpaceFloor}, release: false}
  const next: IdleState = {recent, attempts: state.attempts, sinceAttempt: state.sinceAttempt + 1, newSpaceFloor}
  if (recent.length < policy.windowTicks || next.attempts >= policy.maxAttempts) return {state: next, release: false}
  if (next.attempts > 0 && next.sinceAttempt < policy.retryTicks) return {state: next, release: false}
  // The first release also takes a heap with much garbage or fragmentation; the retries are for the
  // young generation only, since a heap still slack after a full collection stays so.
  const worth = newSpaceGrown(heap, next, policy) || (next.attempts === 0 && heapSlack(heap, policy))
  if (!worth) return {state: next, release: false}
  return {state: {...next, attempts: next.attempts + 1, sinceAttempt: 0}, release: true}
}

/**
 * The state once a release has run, given the heap read right after its collections. A release that
 * left the young generation at its floor ends the quiet spell's attempts: V8 may grow it a step again
 * without traffic (a few MB, measured under load), and another full collection of a large heap for
 * that would be a pause of a hundred milliseconds or more for almost nothing. The retries are for a
 * release that did not shrink it.
 */
export function afterRelease(state: IdleState, after: HeapReading, policy: IdleMemoryPolicy = IDLE_MEMORY_POLICY): IdleState {
  return newSpaceGrown(after, state, policy) ? state : {...state, attempts: Math.max(state.attempts, policy.maxAttempts)}
}

/** How long after a release its RSS is read (V8 unmaps pages on a background thread). */
const RSS_SETTLE_MS = 1000

/** What one release did: the heap read before and right after its collections, RSS a second later. */
export interface IdleRelease {
  before: HeapReading & {rss: number}
  after: HeapReading & {rss: number}
  /** How long the collections held the event loop… */
  pauseMs: number
  /** …of which the full collection. */
  fullMs: number
}

/** The V8 heap committed that a release gave back (never negative). */
export const heapGivenBack = (r: IdleRelease): number => Math.max(0, r.before.heapCommitted - r.after.heapCommitted)

export interface IdleMemoryRelease {
  /** Stops the timer (a process that exits does not need to). */
  stop(): void
}

export interface IdleMemoryOptions {
  /** Told of every release, e.g. for a metric or a debug log line. */
  onRelease?: (release: IdleRelease) => void
  policy?: Partial<IdleMemoryPolicy>
  env?: NodeJS.ProcessEnv
}

/** Set to `off` (or `0`) to keep the young generation as V8 sizes it (measurements, or a suspicion). */
export const IDLE_MEMORY_ENV = 'DBGATE_IDLE_MEMORY_RELEASE'

const OFF = new Set(['off', '0', 'false', 'no'])
const ON = new Set(['', 'on', '1', 'true', 'yes'])

/** A value of DBGATE_IDLE_MEMORY_RELEASE that says neither on nor off. */
export class IdleMemorySettingError extends Error {
  override readonly name = 'IdleMemorySettingError'
  readonly code = 'IDLE_MEMORY_SETTING'
  readonly nextStep = `Set ${IDLE_MEMORY_ENV}=off to keep the memory V8 grew, or unset it (the release is on by default).`
  constructor(value: string) {
    super(`${IDLE_MEMORY_ENV} is ${JSON.stringify(value)}, which is neither on nor off`)
  }
}

/**
 * Whether the environment leaves the release on. Checked by the commands before they open anything,
 * so a mistyped value (`of`, `disabled`) is an error at start, not a release silently left on.
 */
export function idleMemoryReleaseWanted(env: NodeJS.ProcessEnv = process.env): boolean {
  const value = env[IDLE_MEMORY_ENV]
  if (value === undefined) return true
  const v = value.trim().toLowerCase()
  if (OFF.has(v)) return false
  if (ON.has(v)) return true
  throw new IdleMemorySettingError(value)
}

export function readHeap(): HeapReading {
  const spaces = v8.getHeapSpaceStatistics()
  const heap = v8.getHeapStatistics()
  return {newSpace: spaces.find((s) => s.space_name === 'new_space')?.space_size ?? 0, heapCommitted: heap.total_heap_size, heapUsed: heap.used_heap_size}
}

type GcFunction = (minor?: boolean) => void

let gcFunction: GcFunction | undefined

/**
 * V8's `gc` without starting node with --expose-gc: the flag makes V8 install `gc` in contexts
 * created after it is set, so one context is made with it and the flag is put back. In Node 20 (V8
 * 11.3) `gc()` is a full collection and `gc(true)` a scavenge; an options object counts as `true`.
 */
function collector(): GcFunction {
  if (gcFunction) return gcFunction
  const own = (globalThis as {gc?: GcFunction}).gc
  if (typeof own === 'function') return (gcFunction = own)
  v8.setFlagsFromString('--expose-gc')
  try {
    gcFunction = vm.runInNewContext('gc') as GcFunction
  } finally {
    v8.setFlagsFromString('--no-expose-gc')
  }
  return gcFunction
}

/**
 * The collections of one release: a full one (garbage in the old generation; the young generation
 * shrinks at it to its initial size when V8's own allocation rate over its last 5 s of collections
 * is below ~1 MB/s), then a scavenge, which lets V8 unmap the semi-space pages the full collection
 * left committed (measured: the full collection alone shrinks the young generation without
 * lowering RSS).
 *
 * Tried and dropped: `v8.queryObjects` runs V8's memory-reducing "all available garbage"
 * collection, which shrinks the young generation whatever the allocation rate, but it then walks
 * the heap: 0.6–1.25 s with a thousand open sessions, against 30–50 ms for these two.
 */
function collect(): number {
  const gc = collector()
  const start = performance.now()
  gc()
  const fullMs = performance.now() - start
  gc(true)
  return fullMs
}

/** One release: the collections, with what they changed and how long they held the event loop. */
export function releaseNow(): IdleRelease {
  const before = {...readHeap(), rss: process.memoryUsage.rss()}
  const start = performance.now()
  const fullMs = collect()
  const pauseMs = performance.now() - start
  return {before, after: {...readHeap(), rss: process.memoryUsage.rss()}, pauseMs, fullMs}
}

/**
 * Starts the once-a-second watch for this process (one per process: the commands that run tunnels
 * call it, never the library functions that open them). The timer is unref'd: it never keeps a
 * process alive.
 */
export function startIdleMemoryRelease(options: IdleMemoryOptions = {}): IdleMemoryRelease {
  if (!idleMemoryReleaseWanted(options.env ?? process.env)) return {stop() {}}
  // V8 flushes the bytecode of functions left unused over several full collections, but keeps
  // their baseline (Sparkplug) code unless asked: the start-up and login paths' code then stays
  // after a release. Measured with 1,000 idle sessions: code space 1.8 -> 1.1 MB after 30 s idle,
  // no CPU change in hotpath.js (a flushed function is compiled again if it runs again).
  v8.setFlagsFromString('--flush-baseline-code')
  const policy = {...IDLE_MEMORY_POLICY, ...options.policy}
  let state = initialIdleState(readHeap())
  let last: EventLoopUtilization = performance.eventLoopUtilization()
  const timer = setInterval(() => {
    const now = performance.eventLoopUtilization()
    const utilization = performance.eventLoopUtilization(now, last).utilization
    last = now
    const step = nextIdleStep(state, utilization, readHeap(), policy)
    state = step.state
    if (!step.release) return
    const release = releaseNow()
    state = afterRelease(state, release.after, policy)
    // The collections themselves are not traffic: the next tick starts after them.
    last = performance.eventLoopUtilization()
    // V8 unmaps the pages on a background thread: RSS is read again once that is done.
    setTimeout(() => options.onRelease?.({...release, after: {...release.after, rss: process.memoryUsage.rss()}}), RSS_SETTLE_MS).unref()
  }, policy.tickMs)
  timer.unref()
  return {stop: () => clearInterval(timer)}
}

/** One line for a debug log. */
export function describeRelease(r: IdleRelease): string {
  const mb = (n: number) => `${(n / MiB).toFixed(1)} MB`
  return `idle: collected garbage to give memory back: V8 heap ${mb(r.before.heapCommitted)} → ${mb(r.after.heapCommitted)}, young generation ${mb(r.before.newSpace)} → ${mb(r.after.newSpace)}, RSS ${mb(r.before.rss)} → ${mb(r.after.rss)}; paused ${r.pauseMs.toFixed(1)} ms (full collection ${r.fullMs.toFixed(1)} ms)`
}
