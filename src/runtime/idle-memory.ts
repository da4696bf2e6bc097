/**
 * A process that runs tunnels gives its memory back once it goes quiet after load.
 *
 * Under load V8 grows the young generation to its maximum (2 × 16 MB on a machine with a few GB)
 * and keeps it committed and resident for the life of the process; its own memory reducer does not
 * run in a process that no browser tab marks as idle (docs/performance.md, "Idle memory after load"
 * and "Giving memory back when idle"). This module watches the event loop once a second and, after
 * a quiet spell, runs one full garbage collection and one scavenge: with a low allocation rate V8
 * shrinks the young generation at those collections to its initial size and unmaps the rest.
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
  /** A tick whose event-loop utilization is below this is quiet. */
  quietUtilization: number
  /** Consecutive quiet ticks before a release. */
  quietTicks: number
  /** Releases tried in one quiet spell when the young generation stays above its floor. */
  maxAttempts: number
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
 * - quiet is under 2 % of the event loop busy: an idle tunnel with a thousand open connections runs
 *   only its timers (well under 0.1 %); 2 % is a few dozen statements a second, at which V8 would
 *   refuse to shrink anyway (it shrinks only below ~1 MB/s of allocation);
 * - six quiet seconds: V8 (Node 20) decides to shrink the young generation at a collection from the
 *   allocation rate over the last 5 s of its own collections, so a release sooner after the last
 *   collection under load is refused (measured: no shrink at 2–5 s, a shrink from ~5.5 s); a
 *   traffic pattern with pauses shorter than that would grow it straight back;
 * - three attempts at most (6, 12, 18 s into a quiet spell), the later two only if the young
 *   generation is still grown (a collection during the quiet spell can leave load in V8's window);
 *   then nothing until traffic has come and gone again;
 * - "something to give back": the young generation 2 MB above its floor, or the heap committed
 *   16 MB and 50 % above what it uses: below that a full collection's pause buys little.
 */
export const IDLE_MEMORY_POLICY: IdleMemoryPolicy = {
  tickMs: 1000,
  quietUtilization: 0.02,
  quietTicks: 6,
  maxAttempts: 3,
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
  /** Consecutive quiet ticks so far. */
  quiet: number
  /** Releases run in this quiet spell. */
  attempts: number
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
  return {quiet: 0, attempts: 0, newSpaceFloor: Math.min(first.newSpace, NEW_SPACE_INITIAL)}
}

export function newSpaceGrown(heap: HeapReading, state: IdleState, policy: IdleMemoryPolicy): boolean {
  return heap.newSpace >= state.newSpaceFloor + policy.newSpaceExcess
}

export function heapSlack(heap: HeapReading, policy: IdleMemoryPolicy): boolean {
  const slack = heap.heapCommitted - heap.heapUsed
  return slack >= policy.heapSlack && slack >= heap.heapUsed * policy.heapSlackRatio
}

/**
 * One tick: `utilization` is the event loop's over the tick (0…1), `heap` the reading at its end.
 * `release` says to run the collections now.
 */
export function nextIdleStep(state: IdleState, utilization: number, heap: HeapReading, policy: IdleMemoryPolicy = IDLE_MEMORY_POLICY): {state: IdleState; release: boolean} {
  const floor = Math.min(state.newSpaceFloor, heap.newSpace)
  if (utilization >= policy.quietUtilization) return {state: {quiet: 0, attempts: 0, newSpaceFloor: floor}, release: false}
  const next: IdleState = {quiet: state.quiet + 1, attempts: state.attempts, newSpaceFloor: floor}
  const due = next.attempts < policy.maxAttempts && next.quiet >= policy.quietTicks * (next.attempts + 1)
  if (!due) return {state: next, release: false}
  // The first release also takes a heap with much garbage or fragmentation; the retries are for the
  // young generation only, since a heap still slack after a full collection stays so.
  const worth = newSpaceGrown(heap, next, policy) || (next.attempts === 0 && heapSlack(heap, policy))
  if (!worth) return {state: next, release: false}
  return {state: {...next, attempts: next.attempts + 1}, release: true}
}

/** What one release did, read before and right after its collections. */
export interface IdleRelease {
  before: HeapReading & {rss: number}
  after: HeapReading & {rss: number}
  /** How long the collections held the event loop. */
  pauseMs: number
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
 * shrinks at it when V8's allocation rate is low), then a scavenge, which lets V8 unmap the
 * semi-space pages the full collection left committed (measured: the scavenge gives back ~15 MB of
 * RSS more).
 */
export function releaseNow(): IdleRelease {
  const gc = collector()
  const before = {...readHeap(), rss: process.memoryUsage.rss()}
  const start = performance.now()
  gc()
  gc(true)
  const pauseMs = performance.now() - start
  return {before, after: {...readHeap(), rss: process.memoryUsage.rss()}, pauseMs}
}

/**
 * Starts the once-a-second watch for this process (one per process: the commands that run tunnels
 * call it, never the library functions that open them). The timer is unref'd: it never keeps a
 * process alive.
 */
export function startIdleMemoryRelease(options: IdleMemoryOptions = {}): IdleMemoryRelease {
  const setting = (options.env ?? process.env)[IDLE_MEMORY_ENV]
  if (setting === 'off' || setting === '0') return {stop() {}}
  const policy = {...IDLE_MEMORY_POLICY, ...options.policy}
  let state = initialIdleState(readHeap())
  let last: EventLoopUtilization = performance.eventLoopUtilization()
  const timer = setInterval(() => {
    const now = performance.eventLoopUtilization()
    const step = nextIdleStep(state, performance.eventLoopUtilization(now, last).utilization, readHeap(), policy)
    last = now
    state = step.state
    if (!step.release) return
    const release = releaseNow()
    // The collections themselves made this tick busy: the next tick must not count it as traffic.
    last = performance.eventLoopUtilization()
    options.onRelease?.(release)
  }, policy.tickMs)
  timer.unref()
  return {stop: () => clearInterval(timer)}
}

/** One line for a debug log. */
export function describeRelease(r: IdleRelease): string {
  const mb = (n: number) => `${(n / MiB).toFixed(1)} MB`
  return `idle: gave memory back (V8 heap ${mb(r.before.heapCommitted)} → ${mb(r.after.heapCommitted)}, young generation ${mb(r.before.newSpace)} → ${mb(r.after.newSpace)}, RSS ${mb(r.before.rss)} → ${mb(r.after.rss)}; paused ${r.pauseMs.toFixed(1)} ms)`
}
