/**
 * What a `--workers N` primary adds to its workers' start so that they keep less memory after
 * load (docs/performance-history.md, "Idle memory after load"): V8's young generation capped at 4 MB per
 * semi-space instead of growing to 16 MB and staying resident, and glibc limited to two malloc
 * arenas instead of keeping one per V8 worker thread, and glibc's mmap threshold fixed at its
 * default, 128 KiB: left dynamic, one freed buffer of some MB (V8's own compilation zones free
 * such) raises it, and from then on the heap keeps up to twice that of what it frees
 * (docs/performance-history.md, "Ninth round"). All are read only when a process starts,
 * which is why the primary sets them for the processes it starts, and why a single process
 * (`--workers 1`) needs its launcher to set them (docs/gateway.md).
 *
 * Each is a default: an operator who set their own (on node's command line, in NODE_OPTIONS, in the
 * environment) keeps theirs.
 */

export const WORKER_SEMI_SPACE_FLAG = '--max-semi-space-size=4'
export const WORKER_MALLOC_ARENA_MAX = '2'
export const WORKER_MALLOC_MMAP_THRESHOLD = '131072'

/** V8 accepts its flags with dashes or underscores, `=value` or a separate value. */
const SEMI_SPACE = /(?:^|\s)--max[-_]semi[-_]space[-_]size(?:[=\s]|$)/

export interface WorkerStart {
  /** For `cluster.setupPrimary({execArgv})`: the primary's own, plus the default when it applies. */
  execArgv: string[]
  /** Added to the workers' environment (`cluster.fork(env)`), on top of the primary's. */
  env: Record<string, string>
}

export function workerMemoryDefaults(execArgv: readonly string[], env: NodeJS.ProcessEnv): WorkerStart {
  const semiSpaceSet = execArgv.some((a) => SEMI_SPACE.test(a)) || SEMI_SPACE.test(env.NODE_OPTIONS ?? '')
  return {
    execArgv: semiSpaceSet ? [...execArgv] : [...execArgv, WORKER_SEMI_SPACE_FLAG],
    env: {
      ...(env.MALLOC_ARENA_MAX === undefined ? {MALLOC_ARENA_MAX: WORKER_MALLOC_ARENA_MAX} : {}),
      // Either setting of the operator's fixes the threshold (glibc turns the dynamic one off for both).
      ...(env.MALLOC_MMAP_THRESHOLD_ === undefined && env.MALLOC_TRIM_THRESHOLD_ === undefined ? {MALLOC_MMAP_THRESHOLD_: WORKER_MALLOC_MMAP_THRESHOLD} : {}),
    },
  }
}
