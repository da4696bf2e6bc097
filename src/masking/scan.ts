/** `dbgate masking scan`: what a target's catalog holds that masking will hide, and why. */
import type {MaskingConfig} from '../config/types.js'
import {discoverCatalog, type Catalog, type CatalogQuery} from './catalog.js'
import {DEFAULT_STRATEGIES, type MaskingCategory, type MaskingStrategy} from './categories.js'

export interface ScanFinding {
  schema: string
  table: string
  column: string
  type: string
  category: MaskingCategory
  reason: string
  /** `name`/`type` for the built-in dictionary, `config` for a `mask:` glob. */
  source: 'name' | 'type' | 'config' | 'lineage'
  strategy: MaskingStrategy
}

/** Every sensitive column in a catalog, in schema, table and column order. */
export function sensitiveColumns(catalog: Catalog, masking: Pick<MaskingConfig, 'strategies'>): ScanFinding[] {
  const out: ScanFinding[] = []
  const relations = [...catalog.snapshot.relations].sort((a, b) => a.schema.localeCompare(b.schema) || a.name.localeCompare(b.name))
  for (const rel of relations) {
    for (const col of rel.columns) {
      if (!col.sensitive) continue
      const {category, reason, source} = col.sensitive
      out.push({schema: rel.schema, table: rel.name, column: col.name, type: col.typeName, category, reason, source, strategy: masking.strategies[category] ?? DEFAULT_STRATEGIES[category]})
    }
  }
  return out
}

export async function scanCatalog(query: CatalogQuery, masking: MaskingConfig): Promise<ScanFinding[]> {
  return sensitiveColumns(await discoverCatalog(query, masking), masking)
}
