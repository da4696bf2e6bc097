/**
 * `items.map(fn)` awaited with at most `limit` calls in flight, results in the order of `items`.
 * For reads of a listing that anyone who writes the bucket can make as long as they like: all at
 * once, thousands of files open together run past the process's file limit (256 by default on
 * macOS) or a store's connection pool, and the whole listing fails.
 */
export async function mapBounded<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length)
  let next = 0
  const worker = async () => {
    while (next < items.length) {
      const at = next++
      out[at] = await fn(items[at]!)
    }
  }
  await Promise.all(Array.from({length: Math.min(limit, items.length)}, worker))
  return out
}
