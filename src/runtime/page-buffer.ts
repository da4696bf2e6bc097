/**
 * Buffers of pages mapped for them alone, for the large buffers of background work (the
 * shipper's log snapshots and their gzip).
 *
 * Why: Node's Buffers come from glibc's malloc, which serves a request of 128 KiB or more with
 * a mapping of its own, and when such a chunk is freed, raises its mmap threshold to that size
 * (and the heap's trim threshold to twice that). From then on, every buffer below the new
 * threshold comes from the heap, whose free space glibc keeps: one freed 10 MB snapshot made a
 * tunnel keep 20–50 MB more after its load than the same tunnel without it
 * (docs/performance-history.md, "Ninth round"). A WebAssembly.Memory is mapped by V8 itself, outside
 * malloc, and unmapped when collected: its buffer moves no threshold.
 */

/** From this size a buffer gets pages of its own: smaller ones are Node's usual (pooled or malloc'd below glibc's threshold). */
export const PAGE_BUFFER_FROM = 64 * 1024

/** Chunks of output (zlib's) to stay below glibc's default mmap threshold, 128 KiB. */
export const SMALL_CHUNK = 64 * 1024

/** Node has it; the project's TypeScript libraries do not declare it. */
const {Memory} = (globalThis as unknown as {WebAssembly: {Memory: new (d: {initial: number; maximum: number}) => {buffer: ArrayBuffer}}}).WebAssembly

const WASM_PAGE = 64 * 1024
/** A 32-bit memory's limit: 4 GiB. */
const MAX_PAGES = 65536

/**
 * An uninitialised buffer of `size` bytes; from `PAGE_BUFFER_FROM` on, on pages mapped for it
 * alone (zeroed, as fresh mappings are). Falls back to `Buffer.allocUnsafe` where the pages
 * cannot be had (above 4 GiB, or an address-space limit), which is correct, only not as frugal.
 */
export function pageBuffer(size: number): Buffer {
  if (size < PAGE_BUFFER_FROM) return Buffer.allocUnsafe(size)
  const pages = Math.ceil(size / WASM_PAGE)
  if (pages <= MAX_PAGES) {
    try {
      return Buffer.from(new Memory({initial: pages, maximum: pages}).buffer, 0, size)
    } catch {
      /* RangeError: no address space for it; malloc will do */
    }
  }
  return Buffer.allocUnsafe(size)
}

/** `Buffer.concat` into a `pageBuffer`. */
export function concatPages(list: readonly Buffer[]): Buffer {
  if (list.length === 1 && list[0]!.length < PAGE_BUFFER_FROM) return list[0]!
  let total = 0
  for (const b of list) total += b.length
  const out = pageBuffer(total)
  let at = 0
  for (const b of list) at += b.copy(out, at)
  return out
}
