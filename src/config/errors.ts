import {relative, isAbsolute} from 'node:path'
import type {ConfigIssue} from './types.js'

/** No config file in any of the places dbgate looks. */
export const CONFIG_NOT_FOUND = 'DBGATE_CONFIG_NOT_FOUND'
/** A config file exists but could not be read (permissions, a directory, …). */
export const CONFIG_UNREADABLE = 'DBGATE_CONFIG_UNREADABLE'
/** The file was read but has YAML syntax or schema errors; `issues` lists every one. */
export const CONFIG_INVALID = 'DBGATE_CONFIG_INVALID'

/** A `./dbgate.yaml` found in the current directory would carry the person's sign-in, and they have not trusted it. */
export const CONFIG_UNTRUSTED = 'DBGATE_CONFIG_UNTRUSTED'

export type ConfigErrorCode = typeof CONFIG_NOT_FOUND | typeof CONFIG_UNREADABLE | typeof CONFIG_INVALID | typeof CONFIG_UNTRUSTED

export interface FormatOptions {
  /** Paths under this directory are shown relative to it, as compilers do. Default: process.cwd(). */
  cwd?: string
}

/** One issue as a compiler prints it: `dbgate.yaml:12:5 targets.prod.port: <message> — fix: <fix>`. */
export function formatIssue(issue: ConfigIssue, opts: FormatOptions = {}): string {
  const where = `${displayPath(issue.file, opts.cwd)}:${issue.line}:${issue.column}`
  const label = issue.severity === 'warning' ? 'warning: ' : ''
  const key = issue.keyPath ? `${issue.keyPath}: ` : ''
  return `${where} ${key}${label}${issue.message} — fix: ${issue.fix}`
}

function displayPath(file: string, cwd = process.cwd()): string {
  if (!isAbsolute(file)) return file
  const rel = relative(cwd, file)
  return rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : file
}

/**
 * Every way loading configuration can fail. `issues` holds each problem found in the file (all of
 * them, not just the first); for a missing file `searched` lists the places looked in.
 */
export class ConfigError extends Error {
  override readonly name = 'ConfigError'
  readonly code: ConfigErrorCode
  readonly issues: readonly ConfigIssue[]
  /** Warnings found alongside the errors; format() prints them after the errors. */
  readonly warnings: readonly ConfigIssue[]
  readonly searched: readonly string[]
  /** Extra guidance printed after the issues, e.g. a minimal example file. */
  readonly hint?: string
  /** The file the summary names, so format() can show it relative to the cwd like the issues. */
  readonly file?: string

  constructor(
    code: ConfigErrorCode,
    summary: string,
    opts: {file?: string; issues?: readonly ConfigIssue[]; warnings?: readonly ConfigIssue[]; searched?: readonly string[]; hint?: string; cause?: unknown} = {},
  ) {
    super(summary, opts.cause === undefined ? undefined : {cause: opts.cause})
    this.code = code
    this.issues = opts.issues ?? []
    this.warnings = opts.warnings ?? []
    this.searched = opts.searched ?? []
    this.hint = opts.hint
    this.file = opts.file
    Error.captureStackTrace?.(this, ConfigError)
  }

  /** The summary, one compiler-style line per error and then per warning, then the hint. */
  format(opts: FormatOptions = {}): string {
    const lines = [this.file ? this.message.replace(this.file, displayPath(this.file, opts.cwd)) : this.message]
    for (const issue of [...this.issues, ...this.warnings]) lines.push(formatIssue(issue, opts))
    if (this.searched.length > 0) lines.push('Looked in:', ...this.searched.map((s) => `  ${s}`))
    if (this.hint) lines.push('', this.hint)
    return lines.join('\n')
  }
}
