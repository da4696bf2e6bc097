/** Reading a search_path value as PostgreSQL does, for the checks that depend on where it sends names. */

/** The schemas of a search_path value, in order: unquoted names folded to lower case, quoted ones kept with their quotes. */
export function searchPathSchemas(value: string): string[] {
  return value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((s) => (s.startsWith('"') ? s : s.toLowerCase()))
}

/**
 * Whether, under the search_path `value`, new objects named without a schema may go to pg_temp:
 * it names pg_temp, and pg_catalog (the one schema that certainly exists, and where nothing can be
 * created) does not come before it. "$user" and public may not exist, so they do not count.
 */
export function pathCreatesInTemp(value: string): boolean {
  const schemas = searchPathSchemas(value)
  const temp = schemas.indexOf('pg_temp')
  return temp >= 0 && !schemas.slice(0, temp).includes('pg_catalog')
}
