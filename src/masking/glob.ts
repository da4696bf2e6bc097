/** `schema.table.column` globs from the `masking:` config, `*` matching within one part. */

function partRegex(part: string): RegExp {
  const body = part.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')
  return new RegExp(`^${body}$`, 'i')
}

/** Returns a matcher that answers with the first glob matching a path, or undefined. */
export function globMatcher(globs: readonly string[]): (path: readonly [string, string, string]) => string | undefined {
  const compiled = globs.map((g) => ({glob: g, parts: g.split('.').map(partRegex)}))
  return (path) => compiled.find((c) => c.parts.length === 3 && c.parts.every((re, i) => re.test(path[i]!)))?.glob
}
