/** The value of `fn`, computed at most once per `ms` (probes and scrapes may come often). */
export function cachedFor<T>(ms: number, fn: () => Promise<T>): () => Promise<T> {
  let last: {at: number; value: Promise<T>} | undefined
  return () => {
    const now = Date.now()
    if (!last || now - last.at >= ms) {
      const value = fn()
      last = {at: now, value}
      value.catch(() => {
        if (last?.value === value) last = undefined
      })
    }
    return last.value
  }
}
