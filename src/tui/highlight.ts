/**
 * A small SQL highlighter for reading, not parsing: keywords, strings, numbers and comments get
 * colours so a reviewer's eye lands on the verbs. The policy engine, not this, decides what SQL does.
 */
import {Chalk, type ChalkInstance} from 'chalk'

const KEYWORDS = new Set(
  (
    'select from where and or not insert into values update set delete create alter drop table index view schema ' +
    'grant revoke truncate join left right inner outer full on as group by order having limit offset returning with ' +
    'distinct union all begin commit rollback primary key references foreign unique null default column add rename ' +
    'to cascade restrict if exists function trigger procedure role user database copy execute prepare do language ' +
    'case when then else end in is like between constraint check sequence extension vacuum analyze reindex cluster'
  ).split(' '),
)

/** Keywords that change or remove things, in a louder colour than the rest. */
const DANGER = new Set(['delete', 'drop', 'truncate', 'alter', 'grant', 'revoke', 'update', 'insert', 'create', 'copy', 'execute', 'do'])

const TOKEN = /(--[^\n]*|\/\*[\s\S]*?\*\/)|('(?:[^']|'')*'?)|("(?:[^"]|"")*"?)|(\b\d+(?:\.\d+)?\b)|([A-Za-z_][A-Za-z0-9_$]*)|(\s+|.)/g

export function highlightSql(sql: string, chalk: ChalkInstance = new Chalk()): string {
  let out = ''
  for (const m of sql.matchAll(TOKEN)) {
    const [text, comment, str, ident, num, word] = m
    if (comment) out += chalk.gray(text)
    else if (str) out += chalk.green(text)
    else if (ident) out += text
    else if (num) out += chalk.cyan(text)
    else if (word && KEYWORDS.has(word.toLowerCase())) out += DANGER.has(word.toLowerCase()) ? chalk.red.bold(text) : chalk.blue.bold(text)
    else out += text
  }
  return out
}
