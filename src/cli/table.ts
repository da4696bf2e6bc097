/**
 * Tabular output. On a terminal: a header and aligned columns for people. Piped: tab-separated
 * rows with no header, stable for `cut` and `awk` (use --json for anything richer).
 */
import chalk from 'chalk'

export interface Column<Row> {
  header: string
  value: (row: Row) => string
}

export function renderTable<Row>(rows: readonly Row[], columns: readonly Column<Row>[], opts: {tty: boolean}): string {
  const cells = rows.map((row) => columns.map((c) => c.value(row)))
  if (!opts.tty) return cells.map((r) => r.join('\t')).join('\n')
  const widths = columns.map((c, i) => Math.max(c.header.length, ...cells.map((r) => r[i]!.length)))
  const line = (values: string[]) => values.map((v, i) => (i === values.length - 1 ? v : v.padEnd(widths[i]!))).join('  ')
  return [chalk.bold(line(columns.map((c) => c.header))), ...cells.map(line)].join('\n')
}
