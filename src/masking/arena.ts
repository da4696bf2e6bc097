/**
 * Where masked messages are written: one shared, append-only buffer, handed out in consecutive
 * pieces. A piece is never written again once handed out, so it can be kept as long as needed;
 * and the rewritten rows of one chunk come out as adjacent views of one buffer, which the tunnel's
 * output stitches back into one write without copying them (see `joinOut` in src/proxy/connection.ts).
 */
import type {MessageSink} from '../proxy/seam.js'

/**
 * Each arena is a C allocation that lives until the garbage collector frees the last view of it,
 * so a large result leaves the C heap as large as the arenas that were waiting for a collection
 * at its peak, and glibc keeps that memory after the result ends. At 64 KiB nearly every
 * rewritten chunk (~64 KiB) straddled two arenas and was joined for the socket by a copy (a
 * second ~64 KiB allocation per chunk); at 256 KiB about a third as many do. Measured over three
 * 1,000,000-row SELECTs and COPYs: 5,421 joins copying 304 MB at 64 KiB, ~2,000 copying 56–78 MB
 * at 256 KiB; the tunnel's C heap 24–29 MB after them at 64 KiB, 20–21 MB at 256 KiB
 * (docs/performance-history.md, "Fifth round": "Idle memory after load").
 */
export const ARENA_SIZE = 256 * 1024

/** The current buffer; `reserve` may replace it, so read it after reserving. */
export let arena = Buffer.allocUnsafeSlow(ARENA_SIZE)
/** `arena` as 32-bit words, for `put`. */
let arenaView = new DataView(arena.buffer, arena.byteOffset, arena.length)
let used = 0

/** `arena` and `used` at `markOutput`; no mark is open while `markArena` is undefined. */
let markArena: Buffer | undefined
let markUsed = 0

/**
 * Marks where the arena stands before a connection handles a chunk of replies (`ProxyHooks.outputMemory`).
 * The chunk's handling is synchronous: whatever is written from here to `outputWritten` is that
 * chunk's output.
 */
export function markOutput(): void {
  markArena = arena
  markUsed = used
}

/**
 * Takes back what was written since `markOutput`, for the connection that has written it to its
 * client and knows the socket holds none of it: the next rows go where those went, instead of a
 * new arena every 256 KiB whose memory only a garbage collection frees. V8 counts that memory
 * and, every ~64 MB of it, starts a collection of the whole heap: after a load that left the heap
 * large, one a few hundred thousand masked rows (docs/performance-history.md, "Seventh round"). Without an
 * open mark (a nested one took it, or none was made) nothing is taken back. Pieces handed out
 * before the mark are never touched: the promise that a piece is never written again holds for
 * every piece that anything may still refer to.
 */
export function outputWritten(): void {
  const at = markArena
  if (at === undefined) return
  markArena = undefined
  // A new arena since the mark holds only what came after it.
  used = at === arena ? markUsed : 0
}

/** `ProxyHooks.outputMemory` for the arena. */
export const OUTPUT_MEMORY = {mark: markOutput, written: outputWritten}

/** Reserves `size` bytes of `arena` for the caller to fill; returns their offset. */
export function reserve(size: number): number {
  if (used + size > arena.length) {
    arena = Buffer.allocUnsafeSlow(Math.max(ARENA_SIZE, size))
    arenaView = new DataView(arena.buffer, arena.byteOffset, arena.length)
    used = 0
  }
  const at = used
  used += size
  return at
}

/**
 * The read whose messages `rewriteMessages` is rewriting, as 32-bit words, and where its next
 * backslash is (-1: not searched yet; COPY's text lines). Set only during `rewriteMessages`:
 * nothing of a read outlives it.
 */
export const batch: {source: Buffer | undefined; view: DataView | undefined; backslash: number} = {source: undefined, view: undefined, backslash: -1}

/** `batch.view`, made on first need: a batch of rows that all go through unchanged never reads words. */
export function batchView(): DataView {
  const source = batch.source!
  return (batch.view ??= new DataView(source.buffer, source.byteOffset, source.length))
}

/**
 * `src[start, end)` into `dst` at `at`; returns the offset after it. Short spans skip `copy`'s
 * fixed cost (it makes a view); from the read of a batch into the arena, eight bytes at a time.
 */
export function put(dst: Buffer, at: number, src: Buffer, start: number, end: number): number {
  if (end - start > 48) {
    if (src !== batch.source || dst !== arena || end - start > 256) return at + src.copy(dst, at, start, end)
  }
  if (end - start >= 4 && src === batch.source && dst === arena) {
    const sv = batchView()
    const dv = arenaView
    const stop = start + ((end - start) & ~7)
    for (; start < stop; start += 8, at += 8) {
      dv.setUint32(at, sv.getUint32(start, true), true)
      dv.setUint32(at + 4, sv.getUint32(start + 4, true), true)
    }
    if (end - start >= 4) {
      dv.setUint32(at, sv.getUint32(start, true), true)
      start += 4
      at += 4
    }
  }
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

/** What a message rewriter returns besides the end offset of what it wrote into `arena` from `written.start`. */
export const UNCHANGED = -1
/** The rewritten message is `written.other`, a buffer of its own (a row that took the general path). */
export const OTHER = -2
export const written: {start: number; other: Buffer | undefined} = {start: 0, other: undefined}

/** The message a rewriter's result `r` stands for: undefined when unchanged, else its own buffer or its view of the arena. */
export function rewritten(r: number): Buffer | undefined {
  if (r === UNCHANGED) return undefined
  if (r === OTHER) {
    const other = written.other
    written.other = undefined
    return other
  }
  return arena.subarray(written.start, r)
}

/**
 * Rewrites the consecutive messages of type `code` that lie whole in `source` from `start` on,
 * each no longer than `maxBody`: appends the result to `out` in order, runs of rewritten messages
 * adjacent in the arena as one view, runs of unchanged ones as one view of `source`. `rewrite`
 * gets each message's body `source[from, end)`. Returns where the last message taken ends.
 */
export function rewriteMessages(code: number, source: Buffer, start: number, maxBody: number, out: MessageSink, rewrite: MessageRewriter): number {
  batch.source = source
  batch.view = undefined
  batch.backslash = -1
  try {
    return rewriteRun(code, source, start, maxBody, out, rewrite)
  } finally {
    batch.source = undefined
    batch.view = undefined
  }
}

/**
 * What `rewriteMessages` calls for each message: an object with a method rather than a closure, so
 * that a statement's filter makes no function per batch of rows (most statements send one).
 */
export interface MessageRewriter {
  rewrite(source: Buffer, from: number, end: number): number
}

function rewriteRun(code: number, source: Buffer, start: number, maxBody: number, out: MessageSink, rewriter: MessageRewriter): number {
  const limit = source.length
  let at = start
  // The open run: of unchanged messages from `clean`, or of arena bytes [spanStart, spanEnd) of `span`.
  let clean = -1
  let span: Buffer | undefined
  let spanStart = 0
  let spanEnd = 0
  while (at + 5 <= limit && source[at] === code) {
    const length = ((source[at + 1]! << 24) | (source[at + 2]! << 16) | (source[at + 3]! << 8) | source[at + 4]!) >>> 0
    if (length < 4 || length - 4 > maxBody || at + 1 + length > limit) break
    const next = at + 1 + length
    const r = rewriter.rewrite(source, at + 5, next)
    if (r === UNCHANGED) {
      if (span) {
        out.push(span.subarray(spanStart, spanEnd))
        span = undefined
      }
      if (clean < 0) clean = at
    } else {
      if (clean >= 0) {
        passClean(out, source, clean, at)
        clean = -1
      }
      if (r === OTHER) {
        if (span) {
          out.push(span.subarray(spanStart, spanEnd))
          span = undefined
        }
        out.push(written.other!)
        written.other = undefined
      } else if (span === arena && written.start === spanEnd) {
        spanEnd = r
      } else {
        if (span) out.push(span.subarray(spanStart, spanEnd))
        span = arena
        spanStart = written.start
        spanEnd = r
      }
    }
    at = next
  }
  if (span) out.push(span.subarray(spanStart, spanEnd))
  if (clean >= 0) passClean(out, source, clean, at)
  return at
}

/** Unchanged messages `source[start, end)`: as a range where the sink takes one (no view made), else a view. */
function passClean(out: MessageSink, source: Buffer, start: number, end: number): void {
  if (out.passRange) out.passRange(source, start, end)
  else out.push(source.subarray(start, end))
}
