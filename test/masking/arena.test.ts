/**
 * The masking arena hands out pieces that the tunnel writes to the client later, possibly after
 * many more rows were masked: a piece must keep its bytes whatever comes after it. Its buffers are
 * large so that a large result's rewritten rows come from few C allocations (docs/performance-history.md,
 * "Idle memory after load").
 */
import {describe, expect, it} from 'vitest'
import * as arena from '../../src/masking/arena.js'

interface Piece {
  buf: Buffer
  at: number
  size: number
  fill: number
}

/** Reserves pieces of assorted sizes, each filled with its own byte, until `bytes` are handed out. */
function handOut(bytes: number, sizeOf: (i: number) => number): Piece[] {
  const pieces: Piece[] = []
  for (let i = 0, total = 0; total < bytes; i++) {
    const size = sizeOf(i)
    const at = arena.reserve(size)
    const buf = arena.arena
    buf.fill(i & 0xff, at, at + size)
    pieces.push({buf, at, size, fill: i & 0xff})
    total += size
  }
  return pieces
}

const intact = (p: Piece) => p.buf.subarray(p.at, p.at + p.size).every((b) => b === p.fill)

describe('the masking arena', () => {
  it('keeps every piece it handed out while later pieces fill new buffers, one larger than a buffer among them', () => {
    const before = handOut(3 * arena.ARENA_SIZE, (i) => 1 + ((i * 37) % 300))
    const big = handOut(1, () => arena.ARENA_SIZE + 17)
    const after = handOut(2 * arena.ARENA_SIZE, (i) => 5 + ((i * 53) % 900))
    const all = [...before, ...big, ...after]
    expect(new Set(all.map((p) => p.buf)).size).toBeGreaterThan(4)
    expect(all.filter((p) => !intact(p))).toEqual([])
    // No two pieces overlap: each is a span of its own.
    const byBuf = new Map<Buffer, Piece[]>()
    let overlaps = 0
    for (const p of all) {
      const list = byBuf.get(p.buf) ?? []
      list.push(p)
      byBuf.set(p.buf, list)
    }
    for (const list of byBuf.values()) {
      const spans = list.map((p) => [p.at, p.at + p.size] as const).sort((a, b) => a[0] - b[0])
      overlaps += spans.filter((s, i) => i > 0 && s[0] < spans[i - 1]![1]).length
    }
    expect(overlaps).toBe(0)
  })

  it('hands out a large result\'s rows (1 MiB of ~100-byte rows) from at most five buffers', () => {
    // At 64 KiB a buffer, the same rows took 17 C allocations, and nearly every 64 KiB chunk of
    // them straddled two buffers, which costs a copy to join for the socket.
    const pieces = handOut(1024 * 1024, (i) => 90 + (i % 21))
    expect(new Set(pieces.map((p) => p.buf)).size).toBeLessThanOrEqual(5)
    expect(pieces.filter((p) => !intact(p))).toEqual([])
  })
})
