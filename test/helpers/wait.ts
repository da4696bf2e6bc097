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
