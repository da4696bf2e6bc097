/**
 * Masking for one tunnel, wired up: the tunnel's own catalog connection, the discovered catalog,
 * the filter factory, and the proxy hooks that keep the catalog fresh after DDL. Cursors and
 * prepared statements are read from the tunnel's acknowledged session state, so masking keeps none
 * of its own. The lead composes these hooks with policy and audit.
 */
import type {MaskingConfig} from '../config/types.js'
import type {ProxyHooks, StatementEvent} from '../proxy/seam.js'
import type {UpstreamTarget} from '../proxy/upstream.js'
import {OUTPUT_MEMORY} from './arena.js'
import {discoverCatalog, needsRefresh, type Catalog} from './catalog.js'
import {catalogQueryFor, type ClosableCatalogQuery} from './catalog-query.js'
import {createMaskingFilterFactory, type MaskingFilterFactory, type MaskingIdentity} from './filter.js'

export interface MaskingRuntime {
  catalog: Catalog
  factory: MaskingFilterFactory
  hooks: Required<Pick<ProxyHooks, 'resultFilter' | 'onSessionStart' | 'onStatement' | 'onIdle' | 'onConnectionClosed' | 'onUpstreamClosed' | 'outputMemory'>>
  /** Reads the catalog again in the background (statements wait for a read under way); a failure is logged. */
  reread(): void
  close(): Promise<void>
}

export interface StartMaskingOptions {
  /** Where the catalog is read: a session of its own to this upstream, or a given query (the in-memory benchmark). */
  target: UpstreamTarget | ClosableCatalogQuery
  masking: MaskingConfig
  identity: MaskingIdentity
  hashKey?: Buffer | string
  log?: (level: 'info' | 'warn' | 'error', message: string) => void
}

/**
 * `CREATE TABLE AS` and `CREATE MATERIALIZED VIEW` complete with a `SELECT n` tag, so the text is
 * consulted too; a needless refresh costs three catalog queries, a missed one only over-masks.
 */
const DDL_TEXT = /\b(create|alter|drop|comment\s+on)\s/i

export function shouldRefresh(event: Pick<StatementEvent, 'commandTags' | 'sql' | 'outcome'>): boolean {
  if (event.outcome !== 'ok') return false
  for (const tag of event.commandTags) if (tagNeedsRefresh(tag)) return true
  return ddlText(event.sql)
}

/*
 * The last answers, by the string asked about: a prepared statement's every execution has the same
 * text, and the tunnel hands on one string for a session's repeated tags (`SELECT 1`).
 */
let lastTag: string | undefined
let lastTagRefresh = false
let lastText: string | undefined
let lastTextDdl = false

function tagNeedsRefresh(tag: string): boolean {
  if (tag !== lastTag) {
    lastTagRefresh = needsRefresh(tag)
    lastTag = tag
  }
  return lastTagRefresh
}

function ddlText(sql: string): boolean {
  if (sql !== lastText) {
    lastTextDdl = DDL_TEXT.test(sql)
    lastText = sql
  }
  return lastTextDdl
}

export async function startMasking(opts: StartMaskingOptions): Promise<MaskingRuntime> {
  const query = typeof opts.target === 'function' ? opts.target : catalogQueryFor(opts.target)
  let catalog: Catalog
  try {
    catalog = await discoverCatalog(query, opts.masking)
  } catch (error) {
    await query.close()
    throw error
  }
  const factory = createMaskingFilterFactory({catalog, masking: opts.masking, identity: opts.identity, hashKey: opts.hashKey})
  const unread = (e: Error) => opts.log?.('warn', `masking: could not re-read the catalog after DDL (${e.message}); new objects stay masked as untraceable`)
  const reread = () => void catalog.refresh().catch(unread)
  /** Connections closed with a change pending, until the server has ended their sessions (it may commit the change meanwhile). */
  const closedWithChange = new Set<number>()
  return {
    catalog,
    factory,
    reread,
    hooks: {
      resultFilter: factory,
      onSessionStart: (session) => factory.loggedIn(session.connectionId),
      onStatement(event) {
        // A connection with a change pending is read again where it may commit (`statementDone`).
        if (factory.statementDone(event) ?? shouldRefresh(event)) reread()
      },
      onIdle(id, session) {
        factory.ended(id, session)?.catch(unread)
      },
      onConnectionClosed: (id) => {
        if (factory.forgetConnection(id)) closedWithChange.add(id)
      },
      // The change of a client that hung up is committed (or not) by now: read it, as its idle
      // ReadyForQuery, which never comes, would have had it read. (Started before the other
      // sessions' statements go on: they wait for a read under way.)
      onUpstreamClosed: (id) => {
        if (closedWithChange.delete(id)) reread()
      },
      outputMemory: OUTPUT_MEMORY,
    },
    close: () => query.close(),
  }
}
