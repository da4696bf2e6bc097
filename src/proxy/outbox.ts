/**
 * What one event-loop turn sends to one side of a connection, written by `flush` as one write.
 *
 * Most frames go on untouched, and the frames of a chunk that go on are usually all of it, in
 * order: such frames are kept as one span of their source (`pass`), extended frame by frame,
 * with no view made per frame; a chunk passed whole is written as itself. Anything else (a
 * rewritten row, a notice, a refusal) goes into `parts`, which first closes the open span there,
 * so the order of what is written is always the order in which it was added.
 */
import type {Frame} from '../wire/framer.js'

export class Outbox {
  private readonly list: Buffer[] = []
  /** The open span: `source[start, end)`, frames passed untouched and adjacent. */
  private source: Buffer | undefined
  private start = 0
  private end = 0

  /**
   * The buffers to write, in order, for whoever adds one that is not a frame passed untouched:
   * the open span is closed into it first. Do not keep it across a `pass`.
   */
  get parts(): Buffer[] {
    if (this.source !== undefined) this.closeSpan()
    return this.list
  }

  get empty(): boolean {
    return this.source === undefined && this.list.length === 0
  }

  /** Sends `frame` as it came. */
  pass(frame: Frame): void {
    const source = frame.source
    if (source === undefined) {
      this.parts.push(frame.raw)
      return
    }
    this.passRange(source, frame.start!, frame.end!)
  }

  /** Sends the messages `source[start, end)` as they came (a result filter's run of unchanged rows). */
  passRange(source: Buffer, start: number, end: number): void {
    if (source === this.source && start === this.end) {
      this.end = end
      return
    }
    if (this.source !== undefined) this.closeSpan()
    this.source = source
    this.start = start
    this.end = end
  }

  /** Sends `message`, a buffer of its own or a view (as `parts.push`). */
  push(message: Buffer): void {
    this.parts.push(message)
  }

  /**
   * Everything added since the last take, as one buffer (undefined: nothing), or as several when
   * joining them would copy more than `JOIN_COPY_LIMIT` bytes (a 300 MB row and the tag after it are
   * written as they are, not copied into a third buffer); the box is empty after.
   */
  take(): Buffer | Buffer[] | undefined {
    const list = this.list
    if (list.length === 0) {
      const source = this.source
      if (source === undefined) return undefined
      this.source = undefined
      return this.start === 0 && this.end === source.length ? source : source.subarray(this.start, this.end)
    }
    if (this.source !== undefined) this.closeSpan()
    const out = list.length === 1 ? list[0]! : joinAdjacent(list)
    list.length = 0
    return out
  }

  /** Drops everything added since the last take. */
  clear(): void {
    this.source = undefined
    this.list.length = 0
  }

  private closeSpan(): void {
    const source = this.source!
    this.source = undefined
    this.list.push(this.start === 0 && this.end === source.length ? source : source.subarray(this.start, this.end))
  }
}

/** Bytes of separate buffers `take` joins into one; above it, they are written one after the other (see `writeAll`). */
export const JOIN_COPY_LIMIT = 1 << 20

/** `socket.write` of what `Outbox.take` gave: several buffers in one corked write (one writev, no copy). */
export function writeAll(socket: {write(b: Buffer): boolean; cork(): void; uncork(): void}, out: Buffer | Buffer[]): boolean {
  if (!Array.isArray(out)) return socket.write(out)
  socket.cork()
  let drained = true
  for (const b of out) drained = socket.write(b) && drained
  socket.uncork()
  return drained
}

/** One buffer of `parts`, with adjacent views of one memory stitched back into one view first; the views themselves when joining them would copy a lot. */
function joinAdjacent(parts: Buffer[]): Buffer | Buffer[] {
  const merged: Buffer[] = []
  let first = parts[0]!
  let end = first.byteOffset + first.length
  for (let i = 1; i < parts.length; i++) {
    const p = parts[i]!
    if (p.buffer === first.buffer && p.byteOffset === end) {
      end += p.length
    } else {
      merged.push(end === first.byteOffset + first.length ? first : Buffer.from(first.buffer, first.byteOffset, end - first.byteOffset))
      first = p
      end = p.byteOffset + p.length
    }
  }
  merged.push(end === first.byteOffset + first.length ? first : Buffer.from(first.buffer, first.byteOffset, end - first.byteOffset))
  if (merged.length === 1) return merged[0]!
  let total = 0
  for (const m of merged) total += m.length
  return total > JOIN_COPY_LIMIT ? merged : Buffer.concat(merged, total)
}
