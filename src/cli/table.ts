/**
 * Tabular output. On a terminal: a header and aligned columns for people. Piped: tab-separated
 * rows with no header, stable for `cut` and `awk` (use --json for anything richer).
 */
import chalk from 'chalk'
import {visible} from '../util/visible.js'

export interface Column<Row> {
  header: string
  value: (row: Row) => string
}

export function renderTable<Row>(rows: readonly Row[], columns: readonly Column<Row>[], opts: {tty: boolean}): string {
  // Cells hold recorded or requested text (users, SQL, targets): nothing in them may act on the terminal or break a row.
  const cells = rows.map((row) => columns.map((c) => visible(c.value(row))))
  if (!opts.tty) return cells.map((r) => r.join('\t')).join('\n')
  const widths = columns.map((c, i) => Math.max(c.header.length, ...cells.map((r) => r[i]!.length)))
  const line = (values: string[]) => values.map((v, i) => (i === values.length - 1 ? v : v.padEnd(widths[i]!))).join('  ')
  return [chalk.bold(line(columns.map((c) => c.header))), ...cells.map(line)].join('\n')
}
