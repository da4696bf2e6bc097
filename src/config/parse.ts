import {dirname, resolve} from 'node:path'
import {pathToFileURL} from 'node:url'
import {isMap, isScalar, LineCounter, parseDocument, type Document, type Node, type YAMLError, type YAMLMap} from 'yaml'
import {defaultBucketDir} from '../util/paths.js'
import {configWarnings, dbgateSchema, TARGET_KEYS} from './schema.js'
import {CONFIG_INVALID, ConfigError} from './errors.js'
import {keyPathString, YamlSource} from './yaml-source.js'
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
  const cx = new YamlSource(fileName, doc, lineCounter)
  const position = (offset: number) => {
    const {line, col} = lineCounter.linePos(offset)
    return {line: Math.max(line, 1), column: col}
  }
  // One mistake in the structure (a line indented one space off) makes the parser trip over every
  // line after it: only the first structural error is the person's; the rest are its echoes.
  const firstStructural = doc.errors.find((e) => e.code !== 'DUPLICATE_KEY')
  for (const e of doc.errors) {
    if (e.code !== 'DUPLICATE_KEY' && e !== firstStructural) continue
    const at = position(e.pos[0])
    const indent = e.code === 'BAD_INDENT' ? misindented(text, at.line) : undefined
    const message = e.code === 'DUPLICATE_KEY' ? `duplicate key: ${e.message}` : (indent?.message ?? e.message)
    cx.issues.push({severity: 'error', kind: 'syntax', file: fileName, ...at, keyPath: '', message, fix: indent?.fix ?? SYNTAX_FIXES[e.code] ?? 'fix the YAML syntax here'})
  }
  for (const w of doc.warnings) {
    cx.issues.push({severity: 'warning', kind: 'syntax', file: fileName, ...position(w.pos[0]), keyPath: '', message: w.message, fix: 'remove the tag or directive; dbgate.yaml uses plain YAML'})
  }
  // After structural errors the tree is a guess, and schema errors on it would mislead; a
  // duplicate key leaves the tree intact, so validation still runs and reports everything.
  const structural = doc.errors.some((e) => e.code !== 'DUPLICATE_KEY')
  let config: DbgateConfig | undefined
  if (!structural) {
    if (doc.contents === null) {
      cx.report('error', 'empty', null, [], 'the configuration file is empty', 'add at least a "targets:" section (see docs/configuration.md)')
    } else {
      const env = opts.env ?? process.env
      const baseDir = opts.baseDir ?? dirname(resolve(fileName))
      const schema = dbgateSchema({
        baseDir,
        defaultBucketUrl: pathToFileURL(defaultBucketDir(opts.homeDir ? {...env, HOME: opts.homeDir} : env)).href,
        file: fileName,
        positionOf: (path) => cx.positionOf(path),
      })
      reattachDedentedTargetKeys(doc, cx)
      const value = cx.toValue()
      const result = schema.safeParse(value)
      if (result.success) config = result.data
      else cx.addSchemaIssues(result.error.issues)
      const failed = cx.issues.filter((i) => i.severity === 'error').map((i) => i.keyPath)
      const under = (path: string) => failed.some((p) => p === path || p.startsWith(`${path}.`) || p.startsWith(`${path}[`))
      for (const w of configWarnings(value, baseDir, (path) => under(keyPathString(path)))) cx.reportAt('warning', w.kind, w.path, w.at, w.message, w.fix)
    }
  }
  const errors = cx.issues.filter((i) => i.severity === 'error').sort(byPosition)
  const warnings = cx.issues.filter((i) => i.severity === 'warning').sort(byPosition)
  if (errors.length > 0 || config === undefined) {
    const n = errors.length
    throw new ConfigError(CONFIG_INVALID, `Invalid configuration in ${fileName}: ${n} error${n === 1 ? '' : 's'}`, {file: fileName, issues: errors, warnings})
  }
  return {config, warnings}
}

/** For a line indented differently from the lines around it: by how much, and to which column. */
function misindented(text: string, line: number): {message: string; fix: string} | undefined {
  const lines = text.split('\n')
  const here = lines[line - 1]
  // Past the last line (an unclosed `[` or `{`) there is no key to move: YAML's own message says more.
  if (here === undefined || here.trim() === '') return undefined
  const width = (l: string) => l.length - l.trimStart().length
  const key = here.trim().split(':')[0]
  const before = lines.slice(0, line - 1).reverse().find((l) => l.trim() && !l.trim().startsWith('#'))
  if (!before) return undefined
  const want = before.trimEnd().endsWith(':') ? width(before) + 2 : width(before)
  if (width(here) === want) return undefined
  return {
    message: `"${key}" is indented ${width(here)} space${width(here) === 1 ? '' : 's'}, but the line before it is at ${width(before)}; YAML reads the indentation as the structure`,
    fix: `indent "${key}" ${want} spaces, like the keys next to it`,
  }
}

/**
 * A target's key dedented one level (`  user: shop_app` under `targets:`) reads as a target named
 * "user" with a string for its settings, and the real target then misses "user": two errors, both
 * misleading. Said as the one mistake it is, and put back where it was meant, so the rest of the
 * file is checked as intended.
 */
function reattachDedentedTargetKeys(doc: Document, cx: YamlSource): void {
  const targets = doc.get('targets', true)
  if (!isMap(targets)) return
  let previous: {name: string; map: YAMLMap} | undefined
  for (const pair of [...targets.items]) {
    const name = isScalar(pair.key) ? String(pair.key.value) : undefined
    if (name === undefined) continue
    if (isMap(pair.value)) {
      previous = {name, map: pair.value}
      continue
    }
    if (!TARGET_KEYS.includes(name as (typeof TARGET_KEYS)[number]) || !previous) continue
    const where = previous
    cx.report(
      'error',
      'syntax',
      pair.key as Node,
      ['targets', name],
      `"${name}" is a setting of a target, but it is indented as if it were a target of its own (it is at the level of "${where.name}")`,
      `indent it under ${where.name}, in line with ${where.name}'s other keys`,
    )
    targets.items.splice(targets.items.indexOf(pair), 1)
    where.map.items.push(pair)
  }
}

function byPosition(a: ConfigIssue, b: ConfigIssue): number {
  return a.line - b.line || a.column - b.column
}
