import {dirname, resolve} from 'node:path'
import {pathToFileURL} from 'node:url'
import {LineCounter, parseDocument, type YAMLError} from 'yaml'
import {defaultBucketDir} from '../util/paths.js'
import {dbgateSchema} from './dbgate-schema.js'
import {CONFIG_INVALID, ConfigError} from './errors.js'
import {Context, INVALID} from './schema.js'
import type {ConfigIssue, DbgateConfig} from './types.js'

export interface ParseOptions {
  /** Used only to compute defaults (the default bucket directory). */
  env?: NodeJS.ProcessEnv
  homeDir?: string
  /** Relative paths in the file resolve against this; default: the directory of `fileName`. */
  baseDir?: string
}

export interface ParsedConfig {
  config: DbgateConfig
  warnings: ConfigIssue[]
}

/** What to do about the YAML errors people actually make; the library's message says what is wrong. */
const SYNTAX_FIXES: Partial<Record<YAMLError['code'], string>> = {
  DUPLICATE_KEY: 'remove or rename one of the two keys',
  TAB_AS_INDENT: 'indent with spaces, not tabs',
  BAD_INDENT: 'align this line with its siblings, and close any [ or { it is inside',
  MISSING_CHAR: 'add the missing closing character',
  BLOCK_AS_IMPLICIT_KEY: 'indent nested keys consistently, and put a space after each ":"',
  MULTILINE_IMPLICIT_KEY: 'put each key on one line, with ": " after it',
  UNEXPECTED_TOKEN: 'check the quoting and punctuation on this line',
  MULTIPLE_DOCS: 'keep a single YAML document (remove "---" separators)',
  BAD_SCALAR_START: 'quote the value',
}

/**
 * Parses and validates the text of a dbgate.yaml without touching the filesystem. Throws a
 * ConfigError listing every error; returns the config with warnings otherwise.
 */
export function parseConfigText(text: string, fileName: string, opts: ParseOptions = {}): ParsedConfig {
  const lineCounter = new LineCounter()
  const doc = parseDocument(text, {lineCounter, prettyErrors: false, uniqueKeys: true})
  const cx = new Context(fileName, doc, lineCounter)
  const position = (offset: number) => {
    const {line, col} = lineCounter.linePos(offset)
    return {line: Math.max(line, 1), column: col}
  }
  for (const e of doc.errors) {
    const message = e.code === 'DUPLICATE_KEY' ? `duplicate key: ${e.message}` : e.message
    cx.issues.push({severity: 'error', kind: 'syntax', file: fileName, ...position(e.pos[0]), keyPath: '', message, fix: SYNTAX_FIXES[e.code] ?? 'fix the YAML syntax here'})
  }
  for (const w of doc.warnings) {
    cx.issues.push({severity: 'warning', kind: 'syntax', file: fileName, ...position(w.pos[0]), keyPath: '', message: w.message, fix: 'remove the tag or directive; dbgate.yaml uses plain YAML'})
  }
  // After structural errors the tree is a guess, and schema errors on it would mislead; a
  // duplicate key leaves the tree intact, so validation still runs and reports everything.
  const structural = doc.errors.some((e) => e.code !== 'DUPLICATE_KEY')
  let config: DbgateConfig | typeof INVALID = INVALID
  if (!structural) {
    if (doc.contents === null) {
      cx.error('empty', null, [], 'the configuration file is empty', 'add at least a "targets:" section (see docs/configuration.md)')
    } else {
      const env = opts.env ?? process.env
      const schema = dbgateSchema({
        baseDir: opts.baseDir ?? dirname(resolve(fileName)),
        defaultBucketUrl: pathToFileURL(defaultBucketDir(opts.homeDir ? {...env, HOME: opts.homeDir} : env)).href,
      })
      config = schema.parse(doc.contents, {path: []}, cx)
    }
  }
  const errors = cx.issues.filter((i) => i.severity === 'error').sort(byPosition)
  const warnings = cx.issues.filter((i) => i.severity === 'warning').sort(byPosition)
  if (errors.length > 0 || config === INVALID) {
    const n = errors.length
    throw new ConfigError(CONFIG_INVALID, `Invalid configuration in ${fileName}: ${n} error${n === 1 ? '' : 's'}`, {file: fileName, issues: errors, warnings})
  }
  return {config, warnings}
}

function byPosition(a: ConfigIssue, b: ConfigIssue): number {
  return a.line - b.line || a.column - b.column
}
