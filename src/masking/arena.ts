/**
 * Where masked messages are written: one shared, append-only buffer, handed out in consecutive
 * pieces. A piece is never written again once handed out, so it can be kept as long as needed;
 * and the rewritten rows of one chunk come out as adjacent views of one buffer, which the tunnel's
 * output stitches back into one write without copying them (see `joinOut` in src/proxy/connection.ts).
 */
/**
 * Each arena is a C allocation that lives until the garbage collector frees the last view of it,
 * so a large result leaves the C heap as large as the arenas that were waiting for a collection
 * at its peak, and glibc keeps that memory after the result ends. At 64 KiB nearly every
 * rewritten chunk (~64 KiB) straddled two arenas and was joined for the socket by a copy (a
 * second ~64 KiB allocation per chunk); at 256 KiB about a third as many do. Measured over three
 * 1,000,000-row SELECTs and COPYs: 5,421 joins copying 304 MB at 64 KiB, ~2,000 copying 56–78 MB
 * at 256 KiB; the tunnel's C heap 24–29 MB after them at 64 KiB, 20–21 MB at 256 KiB
 * (docs/performance.md, "Fifth round": "Idle memory after load").
 */
export const ARENA_SIZE = 256 * 1024

/** The current buffer; `reserve` may replace it, so read it after reserving. */
export let arena = Buffer.allocUnsafeSlow(ARENA_SIZE)
let used = 0

/** Reserves `size` bytes of `arena` for the caller to fill; returns their offset. */
export function reserve(size: number): number {
  if (used + size > arena.length) {
    arena = Buffer.allocUnsafeSlow(Math.max(ARENA_SIZE, size))
    used = 0
  }
  const at = used
  used += size
  return at
}

/** `src[start, end)` into `dst` at `at`; returns the offset after it. Short spans skip `copy`'s fixed cost. */
export function put(dst: Buffer, at: number, src: Buffer, start: number, end: number): number {
  if (end - start > 48) return at + src.copy(dst, at, start, end)
  for (let i = start; i < end; i++) dst[at++] = src[i]!
  return at
}

/** A big-endian int32 at `at`; returns the offset after it. */
export function putInt32(dst: Buffer, at: number, v: number): number {
  dst[at] = v >>> 24
  dst[at + 1] = v >>> 16
  dst[at + 2] = v >>> 8
  dst[at + 3] = v
  return at + 4
}
