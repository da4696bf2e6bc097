import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import SessionsExport from '../../src/commands/sessions/export.js'
import {captureCommand} from '../helpers/capture.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {createTestDatabase, type UpstreamInfo} from '../helpers/pg.js'
import {auditorEnv, localBucketUrl} from './helpers.js'

/**
 * `sessions export --format csv` put a quote before a cell starting with = + - @, a tab or a CR,
 * so a spreadsheet reads it as text. A client's statement starting with blanks or a line break
 * before the formula, or with a full-width ＝, was written as is: importers that trim cells
 * (LibreOffice's "Trim spaces", Google Sheets) and CJK versions of Excel then read a formula the
 * client wrote, in the auditor's spreadsheet (=HYPERLINK to a look-alike evidence store,
 * =WEBSERVICE sending the other cells away).
 */
const root = path.join(import.meta.dirname, '..', '..')
const savedEnv = {...process.env}

const FORMULAS = [
  ' =HYPERLINK("http://evidence.example/","open the evidence")',
  '\n@SUM(1+1)*cmd|\' /C calc\'!A0',
  '\r\n +1+1',
  '\u3000=1+1',
  '＝HYPERLINK("http://evidence.example/")',
  '＋1',
  '  -- =1\nselect 1',
]

/** The rows of a CSV as a spreadsheet splits them: quoted cells may hold commas, quotes and line breaks. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = []
  let row: string[] = []
  let cell = ''
  let quoted = false
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        cell += '"'
        i++
      } else if (c === '"') quoted = false
      else cell += c
    } else if (c === '"' && cell === '') quoted = true
    else if (c === ',') {
      row.push(cell)
      cell = ''
    } else if (c === '\n') {
      rows.push([...row, cell])
      row = []
      cell = ''
    } else cell += c
  }
  if (cell !== '' || row.length) rows.push([...row, cell])
  return rows
}

describe('statements that read as formulas, in a CSV export', () => {
  let db: UpstreamInfo
  let t: PipelineTunnel | undefined
  let bucketUrl: string

  beforeAll(async () => {
    auditorEnv()
    db = await createTestDatabase('csvformulas')
    bucketUrl = localBucketUrl('csvformulas')
    t = await openPipelineTunnel(db, '', {top: `bucket: ${bucketUrl}`})
    const c = await t.client()
    for (const sql of FORMULAS) await c.query(sql).catch(() => undefined)
    await t.close()
    t = undefined
  }, 60_000)
  afterAll(async () => {
    await t?.close()
    process.env = savedEnv
  })

  it('writes every such statement as text', async () => {
    const r = await captureCommand(() => SessionsExport.run(['--bucket', bucketUrl, '--format', 'csv'], {root}))
    const [header, ...rows] = parseCsv(r.stdout)
    const sqlAt = header!.indexOf('sql')
    const cells = rows.filter((row) => row.length > sqlAt).map((row) => row[sqlAt]!)
    for (const sql of FORMULAS) {
      // The cell is the recorded text behind one quote mark, and the quote comes first.
      expect(cells, JSON.stringify(sql)).toContain(`'${sql}`)
    }
  })
})
