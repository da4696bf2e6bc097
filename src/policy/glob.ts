/**
 * Name matching for rule `tables:` and `functions:` globs. `*` matches within one name part and `?`
 * one character, so `audit.*` is every table of schema audit and `pg_*` every pg_ function.
 */
import type {TableRef} from './types.js'

const compiled = new Map<string, RegExp>()

export function globToRegExp(glob: string): RegExp {
  let re = compiled.get(glob)
  if (!re) {
    const body = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^.]*').replace(/\?/g, '[^.]')
    re = new RegExp(`^${body}$`)
    compiled.set(glob, re)
  }
  return re
}

/**
 * The names a table reference answers to. Unqualified names resolve through search_path, which is
 * `public` unless changed, so `users` answers to both `users` and `public.users`; and a rule written
 * `users` must not be dodged by writing `public.users`.
 */
export function tableNames(t: Pick<TableRef, 'schema' | 'name'>): string[] {
  if (!t.schema) return [t.name, `public.${t.name}`]
  if (t.schema === 'public') return [`public.${t.name}`, t.name]
  return [`${t.schema}.${t.name}`]
}

/**
 * The names a function call answers to: the same search_path reasoning, with pg_catalog, which is
 * searched before anything else.
 */
export function functionNames(fn: string): string[] {
  const dot = fn.lastIndexOf('.')
  if (dot < 0) return [fn, `pg_catalog.${fn}`, `public.${fn}`]
  const schema = fn.slice(0, dot)
  const bare = fn.slice(dot + 1)
  return schema === 'pg_catalog' || schema === 'public' ? [fn, bare] : [fn]
}

export function anyGlobMatches(globs: readonly string[], candidates: readonly string[]): boolean {
  return globs.some((g) => {
    const re = globToRegExp(g)
    return candidates.some((c) => re.test(c))
  })
}

/**
 * Whether `globs` match a reference to every relation of `schema` (`TableRef.schemaWide`). A
 * restricting rule (`all` false) matches when a glob can name some relation there: its schema part
 * matches (a glob without one names relations in public, as `tableNames` reads unqualified names).
 * An allow rule (`all` true) must name them all, so only a glob whose relation part is a lone `*`
 * (`scratch.*`) carries it.
 */
export function schemaGlobsMatch(globs: readonly string[], schema: string, all: boolean): boolean {
  return globs.some((g) => {
    const dot = g.lastIndexOf('.')
    const schemaPart = dot < 0 ? 'public' : g.slice(0, dot)
    const relationPart = g.slice(dot + 1)
    if (all && relationPart !== '*') return false
    return globToRegExp(schemaPart).test(schema)
  })
}
