/**
 * Commits of changes to a database's catalog, told to every pipeline in front of that database:
 * each pipeline reads the catalog on a connection of its own and keeps what it read for a while,
 * so a change committed through one pipeline (another person's on a gateway, or the same person's
 * session on another gateway worker) would otherwise be seen by the others only when their entries
 * age out. A pipeline that sees one of its sessions commit a change says so here; the others of
 * the same database read the catalog again. On a gateway with workers, the primary process relays
 * what one worker says to the others (src/gateway/run.ts).
 */

/** What a pipeline does when another one committed a change to its database's catalog. */
type Listener = () => void

const listeners = new Map<string, Map<object, Set<Listener>>>()
let relay: ((database: string) => void) | undefined

/** The key of a target's database: pipelines of targets that reach the same one share its changes. */
export function databaseKey(target: {host: string; port: number; database: string}): string {
  return `${target.host}:${target.port}/${target.database}`
}

/** Calls `listener` when a pipeline other than `pipeline` commits a change to `database`; returns what stops it. */
export function onCatalogChanged(database: string, pipeline: object, listener: Listener): () => void {
  let byPipeline = listeners.get(database)
  if (!byPipeline) listeners.set(database, (byPipeline = new Map()))
  let own = byPipeline.get(pipeline)
  if (!own) byPipeline.set(pipeline, (own = new Set()))
  own.add(listener)
  return () => {
    own.delete(listener)
    if (own.size === 0) byPipeline.delete(pipeline)
    if (byPipeline.size === 0) listeners.delete(database)
  }
}

/** A session of `pipeline` committed a change to `database` (or may have: it closed with one pending). */
export function catalogChanged(database: string, pipeline: object): void {
  tell(database, pipeline)
  relay?.(database)
}

/** Another process (a gateway worker) committed a change to `database`. */
export function catalogChangedElsewhere(database: string): void {
  tell(database, undefined)
}

/** Where this process's changes go besides its own pipelines (a gateway worker: to the primary). */
export function relayCatalogChanges(to: ((database: string) => void) | undefined): void {
  relay = to
}

function tell(database: string, except: object | undefined): void {
  const byPipeline = listeners.get(database)
  if (!byPipeline) return
  for (const [pipeline, own] of byPipeline) {
    if (pipeline === except) continue
    for (const l of own) l()
  }
}
