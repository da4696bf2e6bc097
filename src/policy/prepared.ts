/**
 * Prepared statements as policy reads them. `EXECUTE name` carries no SQL of its own, so it is
 * judged by what was prepared under that name, whether by SQL `PREPARE` or by an extended-protocol
 * Parse (both share one namespace on the server). In the tunnel that is the session's acknowledged
 * state (`preparedInSession`): a name exists there only once the server confirmed it. Within one
 * text, a PREPARE earlier in the text is staged for the EXECUTEs after it (the server runs them in
 * order and stops at the first error).
 */
import type {SessionView} from '../proxy/seam.js'
import {summarise} from './analyze.js'
import type {Analysis, Operation, StatementAnalysis} from './types.js'

export class PreparedRegistry {
  private readonly statements = new Map<string, readonly Operation[]>()

  get(name: string): readonly Operation[] | undefined {
    return this.statements.get(name)
  }

  /**
   * Records what `name` runs. The first definition stays until it is deallocated, as on the server,
   * where preparing an existing name fails and leaves the old statement in place.
   */
  define(name: string, operations: readonly Operation[]): void {
    if (!this.statements.has(name)) this.statements.set(name, operations)
  }

  delete(name: string): void {
    this.statements.delete(name)
  }

  clear(): void {
    this.statements.clear()
  }

  get size(): number {
    return this.statements.size
  }

  /** Changes staged while judging one text, applied only if the text is let through. */
  stage(): StagedRegistry {
    return new StagedRegistry(this)
  }
}

/** A view of prepared statements plus the changes made earlier in the text being judged. */
export class StagedRegistry {
  /** Made on the first PREPARE or DEALLOCATE: most texts have neither, and judge one per statement. */
  private overlay: Map<string, readonly Operation[] | null> | undefined
  private cleared = false

  /** `base` is read only when a name is looked up (it may be built on demand). */
  constructor(private readonly base: Lookup | (() => Lookup)) {}

  private lookup: Lookup | undefined

  get(name: string): readonly Operation[] | undefined {
    const o = this.overlay?.get(name)
    if (o !== undefined) return o ?? undefined
    if (this.cleared) return undefined
    this.lookup ??= typeof this.base === 'function' ? this.base() : this.base
    return this.lookup.get(name)
  }

  /** As on the server, preparing a name in use fails and leaves the first definition in place. */
  define(name: string, operations: readonly Operation[]): void {
    if (this.get(name) === undefined) (this.overlay ??= new Map()).set(name, operations)
  }

  delete(name: string): void {
    ;(this.overlay ??= new Map()).set(name, null)
  }

  clear(): void {
    this.overlay?.clear()
    this.cleared = true
  }
}

export type Lookup = Pick<PreparedRegistry, 'get'>

/** How deep `EXECUTE` inside a Parse'd statement is followed before it counts as unknown. */
const MAX_EXECUTE_DEPTH = 4

/**
 * The session's acknowledged prepared statements, as operations. What a name runs is read from the
 * text that defined it, each time: a Parse of `EXECUTE other` runs whatever `other` is when it
 * runs, so that is resolved now, not when it was parsed.
 */
export function preparedInSession(session: SessionView, analyze: (sql: string) => Analysis): Lookup {
  const resolving: string[] = []
  const lookup: Lookup = {
    get(name) {
      const def = session.statement(name)
      if (!def || resolving.includes(name) || resolving.length >= MAX_EXECUTE_DEPTH) return undefined
      const stmt = analyze(def.sql).statements[def.statementIndex]
      if (!stmt) return undefined
      if (def.definedBy === 'prepare') return stmt.prepare?.name === name ? stmt.operations : undefined
      resolving.push(name)
      try {
        return resolveExecutes(stmt, lookup).operations
      } finally {
        resolving.pop()
      }
    },
  }
  return lookup
}

/**
 * Replaces every unresolved EXECUTE operation with the operations of the statement it runs. An
 * EXECUTE of a name the registry does not hold stays `unknown`, so it is denied: the name may
 * have been prepared in a way dbgate never saw.
 */
export function resolveExecutes(stmt: StatementAnalysis, registry: Lookup): StatementAnalysis {
  if (!stmt.operations.some((o) => o.executes !== undefined)) return stmt
  const operations: Operation[] = []
  for (const o of stmt.operations) {
    const prepared = o.executes === undefined ? undefined : registry.get(o.executes)
    if (!prepared) {
      operations.push(o)
      continue
    }
    operations.push(...prepared)
    // The EXECUTE's own arguments may read tables or call functions; keep them visible.
    if (o.tables.length > 0 || o.functions.length > 0) {
      operations.push({class: 'read', command: 'execute', tables: o.tables, functions: o.functions, flags: []})
    }
  }
  const command = stmt.command === 'execute' || stmt.command === 'prepare' ? stmt.command : undefined
  return summarise(stmt.index, stmt.text, {
    operations,
    ...(command ? {command} : {}),
    ...(stmt.prepare ? {prepare: stmt.prepare} : {}),
    ...(stmt.deallocate ? {deallocate: stmt.deallocate} : {}),
  })
}

/**
 * Whether judging `statements` reads or changes the prepared-statement namespace at all (an
 * EXECUTE, a PREPARE, a DEALLOCATE): most texts do neither, and need no registry.
 */
export function touchesRegistry(statements: readonly StatementAnalysis[]): boolean {
  for (const s of statements) {
    if (s.prepare || s.deallocate) return true
    for (const o of s.operations) if (o.executes !== undefined) return true
  }
  return false
}

/** Applies a statement's effect on the prepared-statement namespace. */
export function applyToRegistry(stmt: StatementAnalysis, registry: Pick<PreparedRegistry, 'define' | 'delete' | 'clear'>): void {
  if (stmt.prepare) registry.define(stmt.prepare.name, stmt.operations)
  if (stmt.deallocate) {
    if (stmt.deallocate.all) registry.clear()
    else if (stmt.deallocate.name !== undefined) registry.delete(stmt.deallocate.name)
  }
}
