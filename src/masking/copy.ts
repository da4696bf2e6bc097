/**
 * `COPY … TO STDOUT` rows, one CopyData message per row as the server sends them: split into
 * fields by the statement's own options, masked by position, written back in the same format.
 * When the columns' origin is unknown every field is masked: a COPY is never let through blind.
 */
import type {MaskingCategory, MaskingStrategy} from './categories.js'
import {encodeCopyData} from '../wire/backend.js'
import {arena, batch, batchView, OTHER, put, putInt32, reserve, rewritten, UNCHANGED, written} from './arena.js'
import {byteMaskOf, emailCut, writeEmail} from './byte-masks.js'
import {bufferNeeds, scanText} from './detectors.js'
import type {CopyShape} from './lineage.js'
import type {UnkeptMark} from './lasting-marks.js'
import {maskComposite, scanAndMask, type FieldRules, type ValueMasking} from './values.js'

/** A whole field masked by category, or a row / document field masked inside by field rules. */
export type CopyMask = {category: MaskingCategory; strategy: MaskingStrategy} | {rules: FieldRules}

/** Per column position: how to mask it, or undefined to only scan; `all` masks every field. */
export type CopyPlan = {shape: CopyShape; categories: (CopyMask | undefined)[] | 'all'}

const WHOLE: CopyMask = {category: 'untraceable', strategy: 'redact'}

/**
 * Whether a line split into `fields` fields has as many as the copied columns. Fields are masked by
 * position, so a line read otherwise than the server wrote it (a generated column the server leaves
 * out, a quoting rule read wrongly) would put a sensitive value at a clean column's place: such a
 * line is masked whole.
 */
function fieldCountHolds(plan: CopyPlan, fields: number): boolean {
  const columns = plan.shape.columns
  return columns === undefined || columns.length === fields
}

/**
 * A `COPY … TO STDOUT` whose `ENCODING` option is not UTF-8, or undefined. COPY data is read as
 * UTF-8 (the session's client_encoding, which is held at UTF8) to be split into fields; in SJIS,
 * BIG5, GBK, GB18030, UHC or JOHAB the second byte of a character can be a backslash or the
 * delimiter, which the server writes unescaped, so the fields would be split elsewhere than the
 * server meant and a sensitive value would sit at a clean column's position
 * (`copy (select 'ソ', full_name, country …) to stdout (encoding 'SJIS')`). Other encodings write
 * the same bytes as UTF-8 for what masking looks for but are not read as they are meant either, so
 * the allow-list is UTF-8 alone, spelt as the server accepts it (case, `-` and `_` aside, and
 * UNICODE).
 */
export function copyEncodingRefusal(shape: CopyShape | undefined): UnkeptMark | undefined {
  if (shape?.encoding === undefined) return undefined
  const name = shape.encoding.toLowerCase().replace(/[^a-z0-9]/g, '')
  if (name === 'utf8' || name === 'unicode') return undefined
  return {
    message: `masking refuses COPY … TO STDOUT with ENCODING '${shape.encoding}': masking reads COPY data as UTF-8 to find its fields, and in another encoding a character's bytes can read as a delimiter or a backslash, moving a sensitive value to a clean column's place`,
    hint: `Leave out the ENCODING option (or give ENCODING 'UTF8') and convert the output on the client (iconv -f UTF-8 -t ${/^[A-Za-z0-9_-]{1,20}$/.test(shape.encoding) ? shape.encoding.toUpperCase() : '<encoding>'}).`,
  }
}

function maskField(value: string, mask: CopyMask | undefined, m: ValueMasking): string | null | undefined {
  if (!mask) return scanAndMask(value, m)
  // COPY carries no column types: a row's text form is recognised by its shape.
  if ('rules' in mask) return maskComposite(value, 0, mask.rules, m)
  return mask.strategy === 'null' ? null : m.masker.text(value, mask.category, mask.strategy)
}

// ---- text format ----

function unescapeText(s: string): string {
  // Most fields hold no escape at all.
  if (!s.includes('\\')) return s
  return s.replace(/\\(x[0-9a-fA-F]{1,2}|[0-7]{1,3}|.)/g, (_, e: string) => {
    switch (e[0]) {
      case 'b':
        return '\b'
      case 'f':
        return '\f'
      case 'n':
        return '\n'
      case 'r':
        return '\r'
      case 't':
        return '\t'
      case 'v':
        return '\v'
      case 'x':
        return String.fromCharCode(parseInt(e.slice(1), 16))
      default:
        return /^[0-7]/.test(e) ? String.fromCharCode(parseInt(e, 8)) : e
    }
  })
}

const NEEDS_ESCAPE = /[\\\n\r\t]/

function escapeText(s: string, delimiter: string): string {
  if (!NEEDS_ESCAPE.test(s) && !s.includes(delimiter)) return s
  let out = s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/\r/g, '\\r').replace(/\t/g, '\\t')
  if (delimiter !== '\t') out = out.split(delimiter).join(`\\${delimiter}`)
  return out
}

/** Splits on unescaped delimiters (an escaped one is `\` + delimiter). */
function splitText(line: string, delimiter: string): string[] {
  // Without a backslash no delimiter is escaped: a plain split gives the same fields.
  if (!line.includes('\\')) return line.split(delimiter)
  const out: string[] = []
  let cur = ''
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!
    if (c === '\\' && i + 1 < line.length) {
      cur += c + line[i + 1]
      i++
    } else if (line.startsWith(delimiter, i)) {
      out.push(cur)
      cur = ''
      i += delimiter.length - 1
    } else {
      cur += c
    }
  }
  out.push(cur)
  return out
}

/** A text-format line masked on its decoded text: the general path, and what the byte path must equal. */
export function maskTextLine(line: string, plan: CopyPlan, m: ValueMasking): string | undefined {
  const {delimiter, nullString} = plan.shape
  const eol = line.endsWith('\r\n') ? '\r\n' : line.endsWith('\n') ? '\n' : ''
  const fields = splitText(line.slice(0, line.length - eol.length), delimiter)
  const all = plan.categories === 'all' || !fieldCountHolds(plan, fields.length)
  let changed = false
  const out = fields.map((raw, i) => {
    if (raw === nullString) return raw
    const mask = all ? WHOLE : (plan.categories as (CopyMask | undefined)[])[i]
    const masked = maskField(unescapeText(raw), mask, m)
    if (masked === undefined) return raw
    changed = true
    m.onMasked?.()
    return masked === null ? nullString : escapeText(masked, delimiter)
  })
  return changed ? out.join(delimiter) + eol : undefined
}

/** `maskTextLineMessage` cannot take this line: it goes through `maskTextLine`. */
const TEXT_PATH = -3
const BACKSLASH = 0x5c
const STAR = 0x2a

/** A column's whole-value mask as it is written in a line: `bytes` (kind 2), or the e-mail cut with `bytes` its fallback (kind 3). */
class LineMask {
  constructor(
    readonly kind: 2 | 3,
    readonly bytes: Buffer,
  ) {}
}

/**
 * Per COPY plan, built on its first line: everything the byte path reads for every line, taken
 * from the plan and its shape once. `delimiter` is the delimiter's byte, or -1 when the byte path
 * cannot take the plan's lines (not text, a delimiter of several bytes, non-ASCII, a backslash).
 */
class TextLines {
  readonly delimiter: number
  readonly delimiterText: string
  readonly nullString: string
  readonly nullBytes: Buffer
  readonly header: boolean
  /** The copied columns' count, -1 when not known (then every field is masked). */
  readonly fields: number
  readonly categories: CopyPlan['categories']
  /** Per column index; undefined not yet built, null when the column has none. */
  readonly masks: (LineMask | null | undefined)[] = []

  constructor(plan: CopyPlan) {
    const {format, delimiter, nullString, header} = plan.shape
    const d = delimiter.charCodeAt(0)
    this.delimiter = format === 'text' && delimiter.length === 1 && d <= 0x7f && d !== BACKSLASH ? d : -1
    this.delimiterText = delimiter
    this.nullString = nullString
    this.nullBytes = Buffer.from(nullString, 'utf8')
    this.header = header
    this.fields = plan.shape.columns?.length ?? -1
    this.categories = plan.categories
  }
}
const textLines = new WeakMap<CopyPlan, TextLines>()

/**
 * One object of each class the line code reads for every line, kept for the process. V8 drops a
 * map with the last object that has it and deoptimizes the code that checked it; plans and their
 * masks live for one statement, so a mark-compact between two COPYs (frequent after a load such as
 * pgbench) used to take their maps, and the next COPY recompiled its line code and ran its first
 * rows unoptimized meanwhile (docs/performance-history.md, "Sixth round"). With these kept, every plan's
 * objects get the same maps as the first plan's. Exported so that it is kept: a module's constant
 * that nothing exports or reads dies once the module has been evaluated.
 */
export const KEPT_SHAPES = [new TextLines({shape: {format: 'text', delimiter: '\t', quote: '"', escape: '"', nullString: '\\N', header: false}, categories: []}), new LineMask(2, Buffer.alloc(0))]

function linesOf(plan: CopyPlan): TextLines {
  let lines = textLines.get(plan)
  if (!lines) textLines.set(plan, (lines = new TextLines(plan)))
  return lines
}

function textMaskOf(lines: TextLines, i: number, m: ValueMasking): LineMask | null {
  const bm = lines.masks[i]
  return bm !== undefined ? bm : newTextMask(lines, i, m)
}

/**
 * `textMaskOf` the first time a plan meets column `i`. A function of its own: `escaped` captures
 * `delimiter`, which gives the function a context allocated on every call, before any early
 * return; here once per column, in `textMaskOf` it was four objects per line for the collector.
 */
function newTextMask(lines: TextLines, i: number, m: ValueMasking): LineMask | null {
  let bm: LineMask | null
  const mask = lines.categories === 'all' ? WHOLE : lines.categories[i]
  const {delimiterText: delimiter, nullString} = lines
  const escaped = (b: Buffer) => Buffer.from(escapeText(b.toString('utf8'), delimiter), 'utf8')
  const whole = mask && !('rules' in mask) ? byteMaskOf(mask.category, mask.strategy, m.masker) : undefined
  if (!whole) bm = null
  else if (whole.kind === 'null') bm = new LineMask(2, Buffer.from(nullString, 'utf8'))
  else if (whole.kind === 'constant') bm = new LineMask(2, escaped(whole.bytes))
  // The cut keeps bytes of a field that holds no delimiter and adds `***`: escaping changes it only when `*` delimits.
  else bm = delimiter === '*' ? null : new LineMask(3, escaped(whole.fallback))
  lines.masks[i] = bm
  return bm
}

/**
 * Replaced fields of the line being masked, reused from line to line (one line at a time: nothing
 * in between masks another). Kind 2 is `repl[k]`, 3 the e-mail cut at `cuts[3k…]`.
 */
let editFrom = new Int32Array(16)
let editTo = new Int32Array(16)
let editKind = new Uint8Array(16)
let editCuts = new Int32Array(48)
const editRepl: (Buffer | undefined)[] = []

/** Where the line being masked has its delimiters. */
let stops = new Int32Array(16)

function grown(a: Int32Array<ArrayBuffer>): Int32Array<ArrayBuffer> {
  const b = new Int32Array(a.length * 2)
  b.set(a)
  return b
}

function growEdits(): void {
  const grow = <T extends Int32Array | Uint8Array>(a: T, make: (n: number) => T): T => {
    const b = make(a.length * 2)
    b.set(a)
    return b
  }
  editFrom = grow(editFrom, (n) => new Int32Array(n))
  editTo = grow(editTo, (n) => new Int32Array(n))
  editKind = grow(editKind, (n) => new Uint8Array(n))
  editCuts = grow(editCuts, (n) => new Int32Array(n))
}

/**
 * `maskTextLine` on the line's bytes, for the usual line without a backslash, giving the whole
 * CopyData message: no field then holds an escape or an escaped delimiter, so a field is the bytes
 * between two delimiters. One that is not masked and holds nothing the scanner could find is kept
 * as it is, never decoded; whole-value masks with a byte-level form (`byteMaskOf`) are written
 * without decoding; the rest go through the same steps as in `maskTextLine`.
 */
function maskTextLineMessage(line: Buffer, base: number, lineEnd: number, lines: TextLines, m: ValueMasking): number {
  const d = lines.delimiter
  let end = lineEnd
  if (end > base && line[end - 1] === 0x0a) {
    end--
    if (end > base && line[end - 1] === 0x0d) end--
  }
  let delimiters = 0
  if (line === batch.source) {
    // In a batch: the next backslash of the whole read, found once for all the lines before it
    // (what the line leaves, CR and LF, holds none); the delimiters four bytes at a time.
    if (batch.backslash < base) {
      batch.backslash = line.indexOf(BACKSLASH, base)
      if (batch.backslash === -1) batch.backslash = line.length
    }
    if (batch.backslash < end) return TEXT_PATH
    const view = batchView()
    const pattern = Math.imul(d, 0x01010101)
    let i = base
    for (; i + 4 <= end; i += 4) {
      const x = view.getUint32(i, true) ^ pattern
      // Nonzero when a byte of `x` is zero, that is a byte of the four is the delimiter.
      if (((x - 0x01010101) & ~x & 0x80808080) !== 0) {
        for (let k = i; k < i + 4; k++) {
          if (line[k] !== d) continue
          if (delimiters === stops.length) stops = grown(stops)
          stops[delimiters++] = k
        }
      }
    }
    for (; i < end; i++) {
      if (line[i] !== d) continue
      if (delimiters === stops.length) stops = grown(stops)
      stops[delimiters++] = i
    }
  } else {
    // The delimiters and any backslash in one pass over the line (what it leaves, CR and LF, holds
    // neither), in JS: `indexOf` and `includes` cost a native call each and search past the line's end.
    for (let i = base; i < end; i++) {
      const c = line[i]!
      if (c === d) {
        if (delimiters === stops.length) stops = grown(stops)
        stops[delimiters++] = i
      } else if (c === BACKSLASH) {
        return TEXT_PATH
      }
    }
  }
  // Another count than the columns': the general path masks the line whole (`fieldCountHolds`).
  if (lines.fields >= 0 && delimiters + 1 !== lines.fields) return TEXT_PATH
  const nullBytes = lines.nullBytes
  let edits = 0
  let size = lineEnd - base
  for (let i = 0, start = base; i <= delimiters; i++) {
    const stop = i < delimiters ? stops[i]! : end
    const field = start
    start = stop + 1
    if (stop - field === nullBytes.length && nullBytes.compare(line, field, stop) === 0) continue
    if (edits === editKind.length) growEdits()
    const bm = textMaskOf(lines, i, m)
    let kind = 0
    let repl: Buffer | undefined
    if (bm?.kind === 2) {
      kind = 2
      repl = bm.bytes
    } else if (bm?.kind === 3) {
      const n = emailCut(line, field, stop, editCuts, 3 * edits)
      if (n > 0) {
        kind = 3
        size += n - (stop - field)
      } else if (n === 0) {
        kind = 2
        repl = bm.bytes
      }
    }
    if (kind === 0) {
      const mask = lines.categories === 'all' ? WHOLE : lines.categories[i]
      let masked: string | null | undefined
      if (mask) masked = maskField(line.toString('utf8', field, stop), mask, m)
      else {
        const needs = bufferNeeds(line, field, stop)
        masked = needs === 0 ? undefined : scanAndMask(line.toString('utf8', field, stop), m, needs)
      }
      if (masked === undefined) continue
      kind = 2
      repl = Buffer.from(masked === null ? lines.nullString : escapeText(masked, lines.delimiterText), 'utf8')
    }
    m.onMasked?.()
    if (kind === 2) size += repl!.length - (stop - field)
    editFrom[edits] = field
    editTo[edits] = stop
    editKind[edits] = kind
    editRepl[edits] = repl
    edits++
  }
  if (edits === 0) return UNCHANGED
  const at0 = reserve(5 + size)
  const out = arena
  out[at0] = 0x64
  putInt32(out, at0 + 1, 4 + size)
  let at = at0 + 5
  let from = base
  for (let k = 0; k < edits; k++) {
    at = put(out, at, line, from, editFrom[k]!)
    if (editKind[k] === 2) {
      const r = editRepl[k]!
      editRepl[k] = undefined
      at = put(out, at, r, 0, r.length)
    } else {
      at = writeEmail(line, editCuts, 3 * k, out, at)
    }
    from = editTo[k]!
  }
  at = put(out, at, line, from, lineEnd)
  written.start = at0
  return at
}

// ---- CSV format ----

/**
 * A CSV line as the server writes it (CopyAttributeOutCSV): a field is quoted whole or not at all,
 * and inside quotes the escape character stands before every quote and every escape character of
 * the value (with ESCAPE '\', `"a,\\"` is `a,\`). `consistent` is false when the line is not
 * such a line (text after a closing quote, a quote left open): its fields cannot be placed.
 */
function splitCsv(line: string, shape: CopyShape): {fields: {value: string; quoted: boolean}[]; consistent: boolean} {
  const {delimiter, quote, escape} = shape
  const fields: {value: string; quoted: boolean}[] = []
  let consistent = true
  let i = 0
  for (;;) {
    let value = ''
    let quoted = false
    if (line.startsWith(quote, i)) {
      quoted = true
      i += quote.length
      let closed = false
      while (i < line.length) {
        if (line.startsWith(escape, i) && (line.startsWith(quote, i + escape.length) || (escape !== quote && line.startsWith(escape, i + escape.length)))) {
          value += line[i + escape.length]
          i += escape.length + 1
        } else if (line.startsWith(quote, i)) {
          i += quote.length
          closed = true
          break
        } else {
          value += line[i]
          i++
        }
      }
      if (!closed || (i < line.length && !line.startsWith(delimiter, i))) consistent = false
    }
    while (i < line.length && !line.startsWith(delimiter, i)) value += line[i++]
    fields.push({value, quoted})
    if (i >= line.length) break
    i += delimiter.length
  }
  return {fields, consistent}
}

function quoteCsv(value: string, shape: CopyShape): string {
  const {delimiter, quote, escape, nullString} = shape
  const needs = value === nullString || value.includes(delimiter) || value.includes(quote) || /[\r\n]/.test(value) || value.includes(escape)
  if (!needs) return value
  let body = ''
  for (const c of value) body += c === quote || c === escape ? escape + c : c
  return quote + body + quote
}

function maskCsvLine(line: string, plan: CopyPlan, m: ValueMasking): string | undefined {
  const eol = line.endsWith('\r\n') ? '\r\n' : line.endsWith('\n') ? '\n' : ''
  const {fields, consistent} = splitCsv(line.slice(0, line.length - eol.length), plan.shape)
  const all = plan.categories === 'all' || !consistent || !fieldCountHolds(plan, fields.length)
  let changed = false
  const out = fields.map((f, i) => {
    const raw = f.quoted ? quoteCsv(f.value, plan.shape) : f.value
    if (!f.quoted && f.value === plan.shape.nullString) return raw
    const mask = all ? WHOLE : (plan.categories as (CopyMask | undefined)[])[i]
    const masked = maskField(f.value, mask, m)
    if (masked === undefined) return raw
    changed = true
    m.onMasked?.()
    return masked === null ? plan.shape.nullString : quoteCsv(masked, plan.shape)
  })
  return changed ? out.join(plan.shape.delimiter) + eol : undefined
}

// ---- binary format ----

const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1')

function printable(b: Buffer): boolean {
  for (const c of b) if (c < 0x20 && c !== 9 && c !== 10 && c !== 13) return false
  return true
}

function maskBinaryChunk(chunk: Buffer, plan: CopyPlan, m: ValueMasking): Buffer | undefined {
  let at = 0
  const parts: Buffer[] = []
  if (chunk.subarray(0, SIGNATURE.length).equals(SIGNATURE)) {
    const extension = chunk.readInt32BE(SIGNATURE.length + 4)
    at = SIGNATURE.length + 8 + extension
    parts.push(chunk.subarray(0, at))
  }
  if (at + 2 > chunk.length) return undefined
  const count = chunk.readInt16BE(at)
  if (count < 0) return undefined
  parts.push(chunk.subarray(at, at + 2))
  at += 2
  const all = plan.categories === 'all' || !fieldCountHolds(plan, count)
  let changed = false
  for (let i = 0; i < count; i++) {
    const len = chunk.readInt32BE(at)
    at += 4
    if (len < 0) {
      parts.push(chunk.subarray(at - 4, at))
      continue
    }
    const value = chunk.subarray(at, at + len)
    at += len
    const mask = all ? WHOLE : (plan.categories as (CopyMask | undefined)[])[i]
    let out: Buffer | null | undefined
    if (mask) {
      // Binary fields carry no type here; NULL is valid for every type.
      out = null
    } else if (printable(value)) {
      const scanned = scanAndMask(value.toString('utf8'), m)
      out = scanned === undefined ? undefined : Buffer.from(scanned, 'utf8')
    } else {
      // A record, an array, or text with a control character in it (`E'\x01' || body`): their
      // text sits among length words and OIDs, which a rewrite in place would break, so a field
      // the scanner objects to is dropped whole.
      const needs = bufferNeeds(value)
      if (needs !== 0 && scanText(value.toString('utf8'), needs).length > 0) out = null
    }
    if (out === undefined) {
      parts.push(chunk.subarray(at - len - 4, at))
      continue
    }
    changed = true
    m.onMasked?.()
    const header = Buffer.alloc(4)
    header.writeInt32BE(out === null ? -1 : out.length)
    parts.push(header)
    if (out) parts.push(out)
  }
  if (!changed) return undefined
  parts.push(chunk.subarray(at))
  return Buffer.concat(parts)
}

/**
 * Masks one CopyData message's body; `first` tells whether it is the first of its COPY (which
 * carries the CSV header line or the binary signature). Returns the whole rewritten CopyData
 * message, or undefined when nothing changed.
 */
export function maskCopyMessage(chunk: Buffer, plan: CopyPlan, first: boolean, m: ValueMasking, from = 0, end = chunk.length): Buffer | undefined {
  return rewritten(maskCopyInto(chunk, plan, first, m, from, end))
}

/** `maskCopyMessage`, its result as `rewriteMessages` takes it. */
export function maskCopyInto(chunk: Buffer, plan: CopyPlan, first: boolean, m: ValueMasking, from: number, end: number): number {
  const lines = linesOf(plan)
  if (lines.delimiter >= 0 && !(first && lines.header)) {
    const r = maskTextLineMessage(chunk, from, end, lines, m)
    if (r !== TEXT_PATH) return r
  }
  const out = maskCopyBody(from === 0 && end === chunk.length ? chunk : chunk.subarray(from, end), plan, first, m)
  if (!out) return UNCHANGED
  written.other = encodeCopyData(out)
  return OTHER
}

/** `maskCopyMessage`'s body: the rewritten CopyData payload. */
export function maskCopyData(chunk: Buffer, plan: CopyPlan, first: boolean, m: ValueMasking): Buffer | undefined {
  return maskCopyMessage(chunk, plan, first, m)?.subarray(5)
}

function maskCopyBody(chunk: Buffer, plan: CopyPlan, first: boolean, m: ValueMasking): Buffer | undefined {
  if (plan.shape.format === 'binary') {
    try {
      return maskBinaryChunk(chunk, plan, m)
    } catch {
      // A malformed tuple cannot be masked field by field: nothing of it passes.
      return Buffer.alloc(0)
    }
  }
  const line = chunk.toString('utf8')
  if (first && plan.shape.header) {
    const scanned = scanAndMask(line, m)
    return scanned === undefined ? undefined : Buffer.from(scanned, 'utf8')
  }
  const out = plan.shape.format === 'csv' ? maskCsvLine(line, plan, m) : maskTextLine(line, plan, m)
  return out === undefined ? undefined : Buffer.from(out, 'utf8')
}
