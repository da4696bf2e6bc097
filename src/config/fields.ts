/**
 * The building blocks of dbgate.yaml's zod schema (schema.ts): scalars, lists and maps whose
 * issues say what was expected, what was written (never a secret's text) and how to fix it.
 * Each issue carries a Diagnostic in its params; yaml-source.ts turns it into a message at the
 * file, line and column of the value, completing the `{key}`, `{section}` and `{path}` in it.
 *
 * Maps and lists check every key and item they hold (zod's object and array underneath) and keep
 * going after one fails, so one run reports every mistake; a section's cross-field checks run only
 * once all of its fields are valid.
 */
import {z} from 'zod'
import type {IssueKind} from './types.js'
import {closest} from './suggest.js'

export type KeyPath = readonly (string | number)[]

/** An explicit `null` in YAML: empty like a missing value, except where `null` is a word (a masking strategy). */
export const NULL_WORD: unique symbol = Symbol('null')

export interface Diagnostic {
  kind: IssueKind
  /** Standalone text, for documents without a file position. */
  message: string
  /** Text for dbgate.yaml, with `{key}` (the last part of the path), `{section}` and `{path}` filled in. */
  template?: string
  fix: string
  /** Point at the key (cross-field rules, unknown keys) rather than at the value. */
  at?: 'value' | 'key'
  /** `missing-key`: what to write in the fix. */
  example?: string
  /** `unknown-key`: the section's keys, for "did you mean". */
  allowed?: readonly string[]
  /** `duplicate`: index of the list item that has the value first. */
  sameAs?: number
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- addIssue does not depend on the value's type
type Ctx = Pick<z.core.$RefinementCtx<any>, 'addIssue'>

export function raise(ctx: Ctx, d: Diagnostic, path: KeyPath = []): void {
  ctx.addIssue({code: 'custom', message: d.message, path: [...path], params: {diagnostic: d}})
}

/** Completes "expected …" in messages, e.g. "an integer between 1 and 65535". */
const EXPECTED = new WeakMap<object, string>()

export function expectedOf(schema: z.ZodType): string {
  return EXPECTED.get(schema) ?? 'a valid value'
}

function expecting<S extends z.ZodType>(schema: S, expected: string): S {
  EXPECTED.set(schema, expected)
  return schema
}

/** How a value is shown after "got": never the text of a secret. */
export function describe(v: unknown, opts: {secret?: boolean} = {}): string {
  if (v === null || v === undefined || v === NULL_WORD) return 'nothing'
  if (Array.isArray(v)) return 'a list'
  if (typeof v === 'object') return 'a map'
  if (opts.secret) return typeof v === 'string' ? 'a string' : `a ${typeof v}`
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v)
  return String(v)
}

function typeError(expected: string, v: unknown, fix: string, opts: {secret?: boolean} = {}): Diagnostic {
  return {kind: 'type', message: `expected ${expected}, got ${describe(v, opts)}`, fix}
}

const isMapValue = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)
const isScalarValue = (v: unknown): v is string | number | boolean => typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean'

/** Returned by `accept` after it raised its own diagnostic. */
export const FAILED: unique symbol = Symbol('failed')
export type Report = (d: Diagnostic) => typeof FAILED

/** A scalar from a function that accepts the YAML value, or returns undefined (a type error) or FAILED (it said why). */
export function scalar<T>(
  expected: string,
  accept: (value: string | number | boolean, report: Report) => T | undefined | typeof FAILED,
  opts: {fix?: string; secret?: boolean} = {},
): z.ZodType<T, unknown> {
  const fix = opts.fix ?? `write ${expected}`
  const schema = z.unknown().transform((v, ctx): T => {
    if (!isScalarValue(v)) {
      raise(ctx, typeError(expected, v, fix, opts))
      return z.NEVER
    }
    const out = accept(v, (d) => {
      raise(ctx, d)
      return FAILED
    })
    if (out === FAILED) return z.NEVER
    if (out === undefined) {
      raise(ctx, typeError(expected, v, fix, opts))
      return z.NEVER
    }
    return out
  })
  return expecting(schema, expected)
}

export interface StringOptions {
  pattern?: RegExp
  /** Says what `pattern` means, e.g. "a lowercase word". */
  expected?: string
  fix?: string
}

export function string(opts: StringOptions = {}): z.ZodType<string, unknown> {
  return scalar(
    opts.expected ?? 'a non-empty string',
    (v) => {
      if (typeof v !== 'string' || v.trim() === '') return undefined
      return opts.pattern && !opts.pattern.test(v) ? undefined : v
    },
    {fix: opts.fix},
  )
}

export function integer(opts: {min?: number; max?: number} = {}): z.ZodType<number, unknown> {
  const {min, max} = opts
  const expected =
    min !== undefined && max !== undefined ? `an integer between ${min} and ${max}` : min !== undefined ? `an integer >= ${min}` : 'an integer'
  return scalar(expected, (v, report) => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) return undefined
    if ((min !== undefined && v < min) || (max !== undefined && v > max)) return report({kind: 'range', message: `expected ${expected}, got ${v}`, fix: `write ${expected}`})
    return v
  })
}

export function boolean(): z.ZodType<boolean, unknown> {
  return scalar('true or false', (v) => (typeof v === 'boolean' ? v : undefined))
}

/** One of a fixed set of strings; near misses get a "did you mean". */
export function oneOf<const T extends string>(values: readonly T[], opts: {hint?: (got: string) => string | undefined} = {}): z.ZodType<T, unknown> {
  const expected = `one of ${values.join(', ')}`
  const schema = z.unknown().transform((v, ctx): T => {
    if (v === NULL_WORD && values.includes('null' as T)) return 'null' as T
    if ((values as readonly unknown[]).includes(v)) return v as T
    if (!isScalarValue(v) && v !== NULL_WORD) {
      raise(ctx, typeError(expected, v, `write ${expected}`))
      return z.NEVER
    }
    const got = v === NULL_WORD ? 'null' : String(v)
    const suggestion = closest(got, values)
    raise(ctx, {
      kind: 'enum',
      message: `expected ${expected}, got ${describe(v)}${suggestion ? `; did you mean "${suggestion}"?` : ''}`,
      fix: suggestion ? `write "${suggestion}"` : (opts.hint?.(got) ?? `write ${expected}`),
    })
    return z.NEVER
  })
  return expecting(schema, expected)
}

export interface ListOptions {
  min?: number
  /** Items (maps) whose value under this key must differ, e.g. rule ids; checked even when an item has other errors. */
  uniqueKey?: {key: string; what: string}
}

export function list<T>(item: z.ZodType<T, unknown>, opts: ListOptions = {}): z.ZodType<T[], unknown> {
  const expected = `a list (each ${expectedOf(item)})`
  const items = z.array(item)
  const schema = z.unknown().transform((v, ctx): T[] => {
    if (!Array.isArray(v)) {
      raise(ctx, typeError(expected, v, 'write a YAML list, e.g. [a, b]'))
      return z.NEVER
    }
    const result = items.safeParse(v)
    if (!result.success) raiseAll(ctx, result.error.issues)
    // Read from the items as written, so a duplicate is reported even when its item has other errors.
    const unique = opts.uniqueKey === undefined || unequal(v, opts.uniqueKey, ctx)
    if (!result.success || !unique) return z.NEVER
    if (opts.min !== undefined && result.data.length < opts.min) {
      raise(ctx, {kind: 'empty', message: `expected at least ${opts.min} item${opts.min === 1 ? '' : 's'}, got an empty list`, fix: 'add an item, or remove the key'})
      return z.NEVER
    }
    return result.data
  })
  return expecting(schema, expected)
}

function unequal(items: readonly unknown[], {key, what}: {key: string; what: string}, ctx: Ctx): boolean {
  const first = new Map<unknown, number>()
  let ok = true
  items.forEach((it, i) => {
    const v = isMapValue(it) ? it[key] : undefined
    if (!isScalarValue(v)) return
    const j = first.get(v)
    if (j === undefined) return void first.set(v, i)
    ok = false
    raise(ctx, {kind: 'duplicate', message: `duplicate ${what} ${describe(v)}`, fix: `give each item a different ${key}`, sameAs: j}, [i, key])
  })
  return ok
}

/** Picks a schema by the value's shape, e.g. `bucket: s3://…` versus `bucket: {url: …}`. */
export function byShape<T>(shapes: {scalar?: z.ZodType<T, unknown>; map?: z.ZodType<T, unknown>; list?: z.ZodType<T, unknown>}, expected: string): z.ZodType<T, unknown> {
  const schema = z.unknown().transform((v, ctx): T => {
    const chosen = Array.isArray(v) ? shapes.list : isMapValue(v) ? shapes.map : shapes.scalar
    if (!chosen) {
      raise(ctx, typeError(expected, v, `write ${expected}`))
      return z.NEVER
    }
    const result = chosen.safeParse(v)
    if (result.success) return result.data
    raiseAll(ctx, result.error.issues)
    return z.NEVER
  })
  return expecting(schema, expected)
}

/** A single value or a list of them, always read as a list (`class: ddl` ≡ `class: [ddl]`). */
export function oneOrList<T>(item: z.ZodType<T, unknown>): z.ZodType<T[], unknown> {
  const expected = `${expectedOf(item)}, or a list of them`
  return byShape({list: list(item, {min: 1}), map: item.transform((v) => [v]), scalar: item.transform((v) => [v])}, expected)
}

/** The key must be written. */
export function required<O>(schema: z.ZodType<O, unknown>, example: string): z.ZodType<O, unknown> {
  const present = z.unknown().transform((v, ctx) => {
    if (v === undefined) {
      raise(ctx, {kind: 'missing-key', message: 'missing required key', template: 'missing required key "{key}" in {section}', fix: `add "{key}: ${example}"`, at: 'key'})
      return z.NEVER
    }
    return v
  })
  return z.pipe(present, schema as z.ZodType<O, never>) as unknown as z.ZodType<O, unknown>
}

/** When the key is absent: a fresh copy of `value`, so a caller mutating its config can never change the next file's defaults. */
export function withDefault<O>(schema: z.ZodType<O, unknown>, value: O) {
  return schema.default(() => structuredClone(value) as z.core.util.NoUndefined<O>)
}

export interface ObjectOptions<O> {
  /** Empty maps are errors, with this message (e.g. `match: {}` would match every statement). For sections whose keys are all optional. */
  nonEmpty?: string
  /** Cross-field rules, run once every field is valid; `report` points at `key` (or the section). */
  check?: (value: O, report: (d: Diagnostic, key?: string) => void) => void
}

/** A map with a fixed set of keys; any other key (`__proto__` too) is an error with a suggestion. */
export function object<S extends Record<string, z.ZodType>>(shape: S, opts: ObjectOptions<z.output<z.ZodObject<S, z.core.$strict>>> = {}): z.ZodType<z.output<z.ZodObject<S, z.core.$strict>>, unknown> {
  type O = z.output<z.ZodObject<S, z.core.$strict>>
  const names = Object.keys(shape)
  const fields = z.object(shape)
  const schema = z.unknown().transform((v, ctx): O => {
    if (!isMapValue(v)) {
      raise(ctx, typeError('a map', v, `write a map with keys from: ${names.join(', ')}`))
      return z.NEVER
    }
    let ok = true
    for (const key of Object.keys(v)) {
      if (Object.hasOwn(shape, key)) continue
      ok = false
      raise(ctx, {kind: 'unknown-key', message: 'unknown key', fix: `remove it; allowed keys are: ${names.join(', ')}`, allowed: names, at: 'key'}, [key])
    }
    const result = fields.safeParse(v)
    if (!result.success) raiseAll(ctx, result.error.issues)
    if (!ok || !result.success) return z.NEVER
    const value = result.data as O
    if (opts.nonEmpty && Object.keys(value).length === 0) {
      raise(ctx, {kind: 'empty', message: opts.nonEmpty, fix: `add at least one of: ${names.join(', ')}`, at: 'key'})
      return z.NEVER
    }
    let failed = false
    opts.check?.(value, (d, key) => {
      failed = true
      raise(ctx, {at: 'key', ...d}, key === undefined ? [] : [key])
    })
    return failed ? z.NEVER : value
  })
  return expecting(schema, 'a map')
}

/** Re-raises the issues of a schema run on part of the value, under that part's path. */
function raiseAll(ctx: Ctx, issues: readonly z.core.$ZodIssue[], prefix: KeyPath = []): void {
  for (const issue of issues) ctx.addIssue({code: 'custom', message: issue.message, path: [...prefix, ...issue.path], params: issue.code === 'custom' ? issue.params : undefined})
}

/**
 * A map from user-chosen names (checked by `pattern`) to values of one schema. Every name the
 * file holds is checked, `__proto__` included, and an entry with a bad name is not read further.
 */
export function record<T>(value: z.ZodType<T, unknown>, opts: {pattern: RegExp; nameRule: string; min?: number; exampleKey?: string}): z.ZodType<Record<string, T>, unknown> {
  const example = `"${opts.exampleKey ?? 'name'}: {…}"`
  const expected = `a map of names (each value ${expectedOf(value)})`
  const schema = z.unknown().transform((v, ctx): Record<string, T> => {
    if (!isMapValue(v)) {
      raise(ctx, typeError(expected, v, `write a map, e.g. ${example}`))
      return z.NEVER
    }
    const out = Object.create(null) as Record<string, T>
    let ok = true
    for (const name of Object.keys(v)) {
      if (!opts.pattern.test(name)) {
        ok = false
        raise(ctx, {kind: 'format', message: `invalid name ${JSON.stringify(name)}`, template: `invalid name ${JSON.stringify(name)} in {section}`, fix: `rename it: ${opts.nameRule}`, at: 'key'}, [name])
        continue
      }
      const result = value.safeParse(v[name])
      if (result.success) out[name] = result.data
      else {
        ok = false
        raiseAll(ctx, result.error.issues, [name])
      }
    }
    if (!ok) return z.NEVER
    if (opts.min !== undefined && Object.keys(out).length < opts.min) {
      raise(ctx, {kind: 'empty', message: 'is empty', template: '{path} is empty', fix: `add at least one entry, e.g. ${example}`, at: 'key'})
      return z.NEVER
    }
    return out
  })
  return expecting(schema, expected)
}

/** Parses with `schema`, then converts; `convert` may report and return FAILED. */
export function map<A, B>(schema: z.ZodType<A, unknown>, convert: (value: A, report: (d: Diagnostic, path?: KeyPath) => typeof FAILED) => B | typeof FAILED): z.ZodType<B, unknown> {
  const converted = schema.transform((v, ctx): B => {
    const out = convert(v, (d, path) => {
      raise(ctx, d, path)
      return FAILED
    })
    return out === FAILED ? z.NEVER : out
  })
  return expecting(converted as unknown as z.ZodType<B, unknown>, expectedOf(schema))
}
