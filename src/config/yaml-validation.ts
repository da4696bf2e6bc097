/**
 * A small declarative validator over YAML nodes. It exists (instead of validating a plain object)
 * because every message must point at the file, line and column of the offending node, and must
 * keep going after the first mistake so one run reports them all.
 *
 * A schema turns a node into a typed value or `INVALID`. Containers keep validating their other
 * children after one fails, then return `INVALID` themselves, so the caller never builds a config
 * from half-checked input.
 */
import {isAlias, isMap, isScalar, isSeq, type Document, type LineCounter, type Node} from 'yaml'
import {closest} from './suggest.js'
import type {ConfigIssue, IssueKind, IssueSeverity} from './types.js'

export const INVALID: unique symbol = Symbol('invalid')
export type Invalid = typeof INVALID

export type KeyPath = readonly (string | number)[]

/** Where a value sits: its key path, and the key node that introduced it (for empty values). */
export interface At {
  path: KeyPath
  key?: Node | null
}

export interface Schema<T> {
  /** Completes "expected …" in messages, e.g. "an integer between 1 and 65535". */
  readonly expected: string
  parse(node: Node | null, at: At, cx: Context): T | Invalid
}

export type Infer<S> = S extends Schema<infer T> ? T : never

export function keyPathString(path: KeyPath): string {
  let out = ''
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`
    else if (/^[A-Za-z0-9_-]+$/.test(part)) out += out ? `.${part}` : part
    else out += `[${JSON.stringify(part)}]`
  }
  return out
}

interface ObjectLocation {
  at: At
  node: Node
  keys: Map<string, Node>
}

/** Validation state for one file: where issues go, and how to turn a node into a line and column. */
export class Context {
  readonly issues: ConfigIssue[] = []
  /** Lets cross-field checks find the nodes of an already-parsed object, to point at them. */
  private readonly locations = new WeakMap<object, ObjectLocation>()
  /** Key paths whose alias was already reported, so the empty value is not reported again. */
  private readonly brokenAliases = new Set<string>()

  constructor(
    readonly file: string,
    private readonly doc: Document,
    private readonly lineCounter: LineCounter,
  ) {}

  position(node: Node | null | undefined): {line: number; column: number} {
    const offset = node?.range?.[0]
    if (offset === undefined) return {line: 1, column: 1}
    const {line, col} = this.lineCounter.linePos(offset)
    return {line: Math.max(line, 1), column: col}
  }

  report(severity: IssueSeverity, kind: IssueKind, node: Node | null | undefined, path: KeyPath, message: string, fix: string): void {
    this.issues.push({severity, kind, file: this.file, ...this.position(node), keyPath: keyPathString(path), message, fix})
  }

  error(kind: IssueKind, node: Node | null | undefined, path: KeyPath, message: string, fix: string): Invalid {
    this.report('error', kind, node, path, message, fix)
    return INVALID
  }

  /** Follows `*alias` to its anchor; an alias to nothing is reported and read as absent. */
  resolve(node: Node | null | undefined, at: At): Node | null {
    if (!node) return null
    if (!isAlias(node)) return node
    const target = node.resolve(this.doc)
    if (!target) {
      this.brokenAliases.add(keyPathString(at.path))
      this.error('syntax', node, at.path, `alias *${node.source} refers to no anchor`, `define "&${node.source}" on an earlier value, or write the value here`)
      return null
    }
    return target as Node
  }

  hasBrokenAlias(path: KeyPath): boolean {
    return this.brokenAliases.has(keyPathString(path))
  }

  remember(value: object, location: ObjectLocation): void {
    this.locations.set(value, location)
  }

  /** The node of `key` inside a parsed object (or the object itself), with its key path. */
  locate(value: object, key?: string): {node: Node | null; path: KeyPath} {
    const loc = this.locations.get(value)
    if (!loc) return {node: null, path: []}
    if (key === undefined) return {node: loc.at.key ?? loc.node, path: loc.at.path}
    return {node: loc.keys.get(key) ?? loc.at.key ?? loc.node, path: [...loc.at.path, key]}
  }

  carry(from: object, to: object): void {
    const loc = this.locations.get(from)
    if (loc) this.locations.set(to, loc)
  }
}

/** How a value is shown after "got": never the text of a secret. */
export function describe(node: Node | null, opts: {secret?: boolean} = {}): string {
  if (!node) return 'nothing'
  if (isMap(node)) return 'a map'
  if (isSeq(node)) return 'a list'
  if (isScalar(node)) {
    const v = node.value
    if (v === null || v === undefined) return 'nothing'
    if (opts.secret) return typeof v === 'string' ? 'a string' : `a ${typeof v}`
    if (typeof v === 'string') return JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v)
    return String(v)
  }
  return 'an unsupported YAML value'
}

function isEmpty(node: Node | null): boolean {
  return !node || (isScalar(node) && (node.value === null || node.value === undefined) && node.source !== 'null')
}

/** The node to point at for a value: the value itself, or its key when the value is empty. */
function anchor(node: Node | null, at: At): Node | null {
  return node && node.range && node.range[0] !== node.range[1] ? node : (at.key ?? node)
}

function typeError<T>(cx: Context, node: Node | null, at: At, expected: string, fix: string, opts: {secret?: boolean} = {}): T | Invalid {
  if (!node && cx.hasBrokenAlias(at.path)) return INVALID
  return cx.error('type', anchor(node, at), at.path, `expected ${expected}, got ${describe(node, opts)}`, fix)
}

/** A scalar schema from a function that accepts the YAML value or explains what to write instead. */
export function scalar<T>(
  expected: string,
  accept: (value: unknown, node: Node, at: At, cx: Context) => T | Invalid | undefined,
  opts: {fix?: string; secret?: boolean} = {},
): Schema<T> {
  return {
    expected,
    parse(raw, at, cx) {
      const node = cx.resolve(raw, at)
      if (!node || !isScalar(node) || isEmpty(node)) return typeError(cx, node, at, expected, opts.fix ?? `write ${expected}`, opts)
      const out = accept(node.value, node, at, cx)
      return out === undefined ? typeError(cx, node, at, expected, opts.fix ?? `write ${expected}`, opts) : out
    },
  }
}

export interface StringOptions {
  pattern?: RegExp
  /** Says what `pattern` means, e.g. "a lowercase word". */
  expected?: string
  fix?: string
}

export function string(opts: StringOptions = {}): Schema<string> {
  const expected = opts.expected ?? 'a non-empty string'
  return scalar(
    expected,
    (v) => {
      if (typeof v !== 'string' || v.trim() === '') return undefined
      return opts.pattern && !opts.pattern.test(v) ? undefined : v
    },
    {fix: opts.fix},
  )
}

export function integer(opts: {min?: number; max?: number} = {}): Schema<number> {
  const {min, max} = opts
  const expected =
    min !== undefined && max !== undefined
      ? `an integer between ${min} and ${max}`
      : min !== undefined
        ? `an integer >= ${min}`
        : 'an integer'
  return scalar(expected, (v, node, at, cx) => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) return undefined
    if ((min !== undefined && v < min) || (max !== undefined && v > max)) {
      return cx.error('range', node, at.path, `expected ${expected}, got ${v}`, `write ${expected}`)
    }
    return v
  })
}

export function boolean(): Schema<boolean> {
  return scalar('true or false', (v) => (typeof v === 'boolean' ? v : undefined))
}

/** One of a fixed set of strings; near misses get a "did you mean". */
export function oneOf<const T extends string>(values: readonly T[], opts: {hint?: (got: string) => string | undefined} = {}): Schema<T> {
  const expected = `one of ${values.join(', ')}`
  return {
    expected,
    parse(raw, at, cx) {
      const node = cx.resolve(raw, at)
      // A plain `null` in YAML is the null value, but `null` is also a masking strategy's name.
      if (node && isScalar(node) && node.value === null && node.source === 'null' && (values as readonly string[]).includes('null')) {
        return 'null' as T
      }
      if (node && isScalar(node) && (values as readonly unknown[]).includes(node.value)) return node.value as T
      if (!node || !isScalar(node) || isEmpty(node)) return typeError(cx, node, at, expected, `write ${expected}`)
      const got = String(node.value)
      const suggestion = closest(got, values)
      const message = `expected ${expected}, got ${describe(node)}${suggestion ? `; did you mean "${suggestion}"?` : ''}`
      const fix = suggestion ? `write "${suggestion}"` : (opts.hint?.(got) ?? `write ${expected}`)
      return cx.error('enum', node, at.path, message, fix)
    },
  }
}

export interface ListOptions {
  min?: number
  /**
   * Items (maps) whose scalar value under this key must differ, e.g. rule ids. Read from the YAML
   * itself, so a duplicate is reported even when the item has other errors.
   */
  uniqueKey?: {key: string; what: string}
}

export function list<T>(item: Schema<T>, opts: ListOptions = {}): Schema<T[]> {
  const expected = `a list (each ${item.expected})`
  return {
    expected,
    parse(raw, at, cx) {
      const node = cx.resolve(raw, at)
      if (!node || !isSeq(node)) return typeError(cx, node, at, expected, `write a YAML list, e.g. [a, b]`)
      let ok = true
      const out: T[] = []
      node.items.forEach((child, i) => {
        const v = item.parse(child as Node | null, {path: [...at.path, i]}, cx)
        if (v === INVALID) ok = false
        else out.push(v)
      })
      if (opts.uniqueKey !== undefined && !checkUnique(node, opts.uniqueKey.key, opts.uniqueKey.what, at, cx)) ok = false
      if (ok && opts.min !== undefined && out.length < opts.min) {
        return cx.error('empty', anchor(node, at), at.path, `expected at least ${opts.min} item${opts.min === 1 ? '' : 's'}, got an empty list`, 'add an item, or remove the key')
      }
      return ok ? out : INVALID
    },
  }
}

function checkUnique(seq: Node, key: string, what: string, at: At, cx: Context): boolean {
  if (!isSeq(seq)) return true
  const firstLine = new Map<unknown, number>()
  let ok = true
  seq.items.forEach((raw, i) => {
    const item = cx.resolve(raw as Node | null, at)
    if (!item || !isMap(item)) return
    const pair = item.items.find((p) => isScalar(p.key) && p.key.value === key)
    const valueNode = pair?.value as Node | null | undefined
    if (!valueNode || !isScalar(valueNode) || valueNode.value === null) return
    const first = firstLine.get(valueNode.value)
    if (first === undefined) {
      firstLine.set(valueNode.value, cx.position(valueNode).line)
      return
    }
    ok = false
    const where = keyPathString(at.path)
    cx.error('duplicate', valueNode, [...at.path, i, key], `duplicate ${what} ${describe(valueNode)} in ${where} (first used at line ${first})`, `give each item of ${where} a different ${key}`)
  })
  return ok
}

/** A single value or a list of them, always read as a list (`class: ddl` ≡ `class: [ddl]`). */
export function oneOrList<T>(item: Schema<T>): Schema<T[]> {
  const many = list(item, {min: 1})
  return {
    expected: `${item.expected}, or a list of them`,
    parse(raw, at, cx) {
      const node = cx.resolve(raw, at)
      if (node && isSeq(node)) return many.parse(node, at, cx)
      const one = item.parse(node, at, cx)
      return one === INVALID ? INVALID : [one]
    },
  }
}

/** Parses with `schema`, then converts; the conversion may report issues and return INVALID. */
export function map<A, B>(schema: Schema<A>, convert: (value: A, at: At, cx: Context, node: Node | null) => B | Invalid, expected = schema.expected): Schema<B> {
  return {
    expected,
    parse(raw, at, cx) {
      const value = schema.parse(raw, at, cx)
      if (value === INVALID) return INVALID
      const out = convert(value, at, cx, cx.resolve(raw, at))
      if (out !== INVALID && typeof value === 'object' && value !== null && typeof out === 'object' && out !== null) cx.carry(value, out)
      return out
    },
  }
}

/** Picks a schema by the node's shape, e.g. `bucket: s3://…` versus `bucket: {url: …}`. */
export function byShape<T>(shapes: {scalar?: Schema<T>; map?: Schema<T>}, expected: string): Schema<T> {
  return {
    expected,
    parse(raw, at, cx) {
      const node = cx.resolve(raw, at)
      const schema = node && isMap(node) ? shapes.map : shapes.scalar
      if (!schema || (node && isSeq(node))) return typeError(cx, node, at, expected, `write ${expected}`)
      return schema.parse(node, at, cx)
    },
  }
}

export interface Field<T, Out> {
  schema: Schema<T>
  /** Makes the key mandatory. */
  required?: boolean
  /** Applied when the key is absent. */
  default?: T
  /** Shown in the fix of a missing required key: `add "host: <example>"`. */
  example?: string
  /** Never set: carries the field's output type (`T | undefined` when optional) to ObjectOf. */
  readonly _out?: Out
}

/** The key may be absent; its value is then undefined. */
export function optional<T>(schema: Schema<T>): Field<T, T | undefined> {
  return {schema}
}

export function required<T>(schema: Schema<T>, example: string): Field<T, T> {
  return {schema, required: true, example}
}

export function withDefault<T>(schema: Schema<T>, value: T): Field<T, T> {
  return {schema, default: value}
}

type Fields = Record<string, Field<unknown, unknown>>
export type ObjectOf<F extends Fields> = {[K in keyof F]: F[K] extends Field<unknown, infer Out> ? Out : never}

export interface ObjectOptions<F extends Fields> {
  /** Empty maps are errors, with this message (e.g. `match: {}` would match every statement). */
  nonEmpty?: string
  /** Cross-field rules, run once every field is valid; report with `cx.locate(value, key)`. */
  check?: (value: ObjectOf<F>, at: At, cx: Context) => void
}

/** A map with a fixed set of keys; any other key is an error with a suggestion. */
export function object<F extends Fields>(fields: F, opts: ObjectOptions<F> = {}): Schema<ObjectOf<F>> {
  const names = Object.keys(fields)
  const expected = 'a map'
  return {
    expected,
    parse(raw, at, cx) {
      const node = cx.resolve(raw, at)
      if (!node || !isMap(node)) return typeError(cx, node, at, expected, `write a map with keys from: ${names.join(', ')}`)
      const here = keyPathString(at.path) || 'the top level'
      const keys = new Map<string, Node>()
      const values = new Map<string, Node | null>()
      let ok = true
      for (const pair of node.items) {
        const keyNode = pair.key as Node | null
        const key = keyNode && isScalar(keyNode) ? keyNode.value : undefined
        if (typeof key !== 'string') {
          ok = false
          cx.error('type', keyNode ?? node, at.path, `expected a key name in ${here}, got ${describe(keyNode)}`, 'write a plain word as the key')
          continue
        }
        if (!Object.hasOwn(fields, key)) {
          ok = false
          const suggestion = closest(key, names)
          cx.error(
            'unknown-key',
            keyNode,
            [...at.path, key],
            `unknown key "${key}" in ${here}${suggestion ? `; did you mean "${suggestion}"?` : ''}`,
            suggestion ? `rename it to "${suggestion}"` : `remove it; allowed keys are: ${names.join(', ')}`,
          )
          continue
        }
        keys.set(key, keyNode!)
        values.set(key, pair.value as Node | null)
      }
      const out: Record<string, unknown> = {}
      for (const name of names) {
        const field = fields[name]!
        if (!keys.has(name)) {
          if (field.required) {
            ok = false
            cx.error('missing-key', at.key ?? node, [...at.path, name], `missing required key "${name}" in ${here}`, `add "${name}: ${field.example ?? '…'}"`)
          } else {
            // A copy, so a caller mutating its config can never change the next file's defaults.
            out[name] = field.default === undefined ? undefined : structuredClone(field.default)
          }
          continue
        }
        const v = field.schema.parse(values.get(name) ?? null, {path: [...at.path, name], key: keys.get(name)}, cx)
        if (v === INVALID) ok = false
        else out[name] = v
      }
      if (ok && opts.nonEmpty && keys.size === 0) {
        return cx.error('empty', at.key ?? node, at.path, opts.nonEmpty, `add at least one of: ${names.join(', ')}`)
      }
      if (!ok) return INVALID
      cx.remember(out, {at, node, keys})
      const value = out as ObjectOf<F>
      const before = cx.issues.filter((i) => i.severity === 'error').length
      opts.check?.(value, at, cx)
      return cx.issues.filter((i) => i.severity === 'error').length > before ? INVALID : value
    },
  }
}

/** A map from user-chosen names (checked by `pattern`) to values of one schema. */
export function record<T>(value: Schema<T>, opts: {pattern: RegExp; nameRule: string; min?: number; exampleKey?: string}): Schema<Map<string, T>> {
  const expected = `a map of names (each value ${value.expected})`
  return {
    expected,
    parse(raw, at, cx) {
      const node = cx.resolve(raw, at)
      if (!node || !isMap(node)) return typeError(cx, node, at, expected, `write a map, e.g. "${opts.exampleKey ?? 'name'}: {…}"`)
      const out = new Map<string, T>()
      let ok = true
      for (const pair of node.items) {
        const keyNode = pair.key as Node | null
        const key = keyNode && isScalar(keyNode) ? keyNode.value : undefined
        const name = typeof key === 'string' || typeof key === 'number' ? String(key) : undefined
        if (name === undefined || !opts.pattern.test(name)) {
          ok = false
          cx.error('format', keyNode ?? node, name === undefined ? at.path : [...at.path, name], `invalid name ${describe(keyNode)} in ${keyPathString(at.path)}`, `rename it: ${opts.nameRule}`)
          continue
        }
        const v = value.parse(pair.value as Node | null, {path: [...at.path, name], key: keyNode}, cx)
        if (v === INVALID) ok = false
        else out.set(name, v)
      }
      if (ok && opts.min !== undefined && out.size < opts.min) {
        return cx.error('empty', at.key ?? node, at.path, `${keyPathString(at.path)} is empty`, `add at least one entry, e.g. "${opts.exampleKey ?? 'name'}: {…}"`)
      }
      return ok ? out : INVALID
    },
  }
}
