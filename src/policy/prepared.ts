/**
 * Server-side prepared statements, per connection. `EXECUTE name` carries no SQL of its own, so it
 * is judged by what was prepared under that name, whether by SQL `PREPARE` or by an
 * extended-protocol Parse (both share one namespace on the server).
 */
import {summarise} from './analyze.js'
import type {Operation, StatementAnalysis} from './types.js'

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

/** A view of a registry plus pending changes; `commit` applies them in order. */
export class StagedRegistry {
  private readonly changes: ({kind: 'define'; name: string; operations: readonly Operation[]} | {kind: 'delete'; name: string} | {kind: 'clear'})[] = []
  private readonly overlay = new Map<string, readonly Operation[] | null>()
  private cleared = false

  constructor(private readonly base: PreparedRegistry) {}

  get(name: string): readonly Operation[] | undefined {
    const o = this.overlay.get(name)
    if (o !== undefined) return o ?? undefined
    return this.cleared ? undefined : this.base.get(name)
  }

  define(name: string, operations: readonly Operation[]): void {
    this.changes.push({kind: 'define', name, operations})
    if (this.get(name) === undefined) this.overlay.set(name, operations)
  }

  delete(name: string): void {
    this.changes.push({kind: 'delete', name})
    this.overlay.set(name, null)
  }

  clear(): void {
    this.changes.push({kind: 'clear'})
    this.overlay.clear()
    this.cleared = true
  }

  commit(): void {
    for (const c of this.changes) {
      if (c.kind === 'define') this.base.define(c.name, c.operations)
      else if (c.kind === 'delete') this.base.delete(c.name)
      else this.base.clear()
    }
    this.changes.length = 0
  }
}

/** One registry per connection, for a proxy that serves many. */
export class ConnectionRegistries {
  private readonly byConnection = new Map<number, PreparedRegistry>()

  for(connectionId: number): PreparedRegistry {
    let r = this.byConnection.get(connectionId)
    if (!r) {
      r = new PreparedRegistry()
      this.byConnection.set(connectionId, r)
    }
    return r
  }

  /** The connection's registry if it has one, without creating it. */
  get(connectionId: number): PreparedRegistry | undefined {
    return this.byConnection.get(connectionId)
  }

  /** Forgets a closed connection's statements. */
  drop(connectionId: number): void {
    this.byConnection.delete(connectionId)
  }

  get size(): number {
    return this.byConnection.size
  }
}

type Lookup = Pick<PreparedRegistry, 'get'>

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

/** Applies a statement's effect on the prepared-statement namespace. */
export function applyToRegistry(stmt: StatementAnalysis, registry: Pick<PreparedRegistry, 'define' | 'delete' | 'clear'>): void {
  if (stmt.prepare) registry.define(stmt.prepare.name, stmt.operations)
  if (stmt.deallocate) {
    if (stmt.deallocate.all) registry.clear()
    else if (stmt.deallocate.name !== undefined) registry.delete(stmt.deallocate.name)
  }
}
