type Truthy<T> = Exclude<T, false | 0 | '' | null | undefined>

/**
 * Waits until `fact` holds and returns what it returned. Tests wait on facts (server state, a
 * frame, a file), never for a fixed time; the timeout only bounds a failure, and its message says
 * what never happened.
 */
export async function waitFor<T>(fact: () => T | Promise<T>, what: string | (() => string), opts: {timeoutMs?: number; intervalMs?: number} = {}): Promise<Truthy<T>> {
  const timeoutMs = opts.timeoutMs ?? 15_000
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await fact()
    if (value) return value as Truthy<T>
    if (Date.now() > deadline) throw new Error(`gave up after ${timeoutMs} ms waiting until ${typeof what === 'string' ? what : what()}`)
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 20))
  }
}

/**
 * Polls a probe that may fail while what it looks at is not there yet (a server still starting, a
 * file not yet written): a failure counts as "not yet"; the first value other than undefined wins.
 */
export function untilProbe<T>(probe: () => Promise<T | undefined>, what: string, opts: {timeoutMs?: number; intervalMs?: number} = {}): Promise<T> {
  return waitFor(async () => {
    const v = await probe().catch(() => undefined)
    return v === undefined ? undefined : {v}
  }, what, opts).then((box) => box.v)
}
