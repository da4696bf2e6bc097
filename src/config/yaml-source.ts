/**
 * dbgate.yaml as the schema sees it (plain values) and as people see it (lines and columns). The
 * zod schema (schema.ts) validates the plain values; every issue it raises carries a key path,
 * which this module maps back to the YAML node it came from, so a message points at the file,
 * line and column of the mistake.
 */
import {isAlias, isMap, isScalar, isSeq, type Document, type LineCounter, type Node} from 'yaml'
import type {z} from 'zod'
import {closest} from './suggest.js'
import type {ConfigIssue, IssueKind, IssueSeverity} from './types.js'
import {NULL_WORD, type Diagnostic, type KeyPath} from './fields.js'

export function keyPathString(path: KeyPath): string {
  let out = ''
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`
    else if (/^[A-Za-z0-9_-]+$/.test(part)) out += out ? `.${part}` : part
    else out += `[${JSON.stringify(part)}]`
  }
  return out
}

/** Where a value was written: its node, and the key that introduced it (for empty values and missing keys). */
interface Written {
  node: Node | null
  key: Node | null
}

const pathKey = (path: readonly PropertyKey[]): string => JSON.stringify(path.map((p) => (typeof p === 'number' ? p : String(p))))

/** One file's YAML document, read as plain values, with every issue found in it. */
export class YamlSource {
  readonly issues: ConfigIssue[] = []
  private readonly written = new Map<string, Written>()
  /** Key paths whose alias was already reported, so the missing value is not reported again. */
  private readonly brokenAliases = new Set<string>()
  /** Key paths whose last key is a number in the file (`1: …`): a name for a target, not a key of a section. */
  private readonly numberKeys = new Set<string>()

  constructor(
    readonly file: string,
    private readonly doc: Document,
    private readonly lineCounter: LineCounter,
  ) {}

  position(node: Node | null | undefined): {line: number; column: number} {
    const offset = node?.range?.[0]
    if (offset === undefined) return {line: 1, column: 1}
    const {line, col} = this.lineCounter.linePos(offset)
    return {line: Math.max(line, 1), column: col}
  }

  report(severity: IssueSeverity, kind: IssueKind, node: Node | null | undefined, path: KeyPath, message: string, fix: string): void {
    this.issues.push({severity, kind, file: this.file, ...this.position(node), keyPath: keyPathString(path), message, fix})
  }

  /**
   * The document as plain values: maps as null-prototype objects (a key named `__proto__` or
   * `constructor` is just a key), aliases followed, an explicit `null` as NULL_WORD (a masking
   * strategy is called null). Remembers where each value was written.
   */
  toValue(): unknown {
    return this.convert(this.doc.contents as Node | null, [], null, new Set())
  }

  private convert(raw: Node | null, path: KeyPath, key: Node | null, resolving: Set<Node>): unknown {
    let node = raw
    if (node && isAlias(node)) {
      const target = node.resolve(this.doc) as Node | undefined
      if (!target || resolving.has(target)) {
        this.brokenAliases.add(pathKey(path))
        if (target) this.report('error', 'syntax', node, path, `alias *${node.source} refers to the value it is part of`, 'write the value here instead of the alias')
        else this.report('error', 'syntax', node, path, `alias *${node.source} refers to no anchor`, `define "&${node.source}" on an earlier value, or write the value here`)
        this.written.set(pathKey(path), {node, key})
        // Present but unusable: its section fails (and skips its cross-field checks), and nothing more is said of it.
        return BROKEN_ALIAS
      }
      node = target
    }
    this.written.set(pathKey(path), {node, key})
    if (!node) return null
    if (isMap(node)) {
      resolving.add(node)
      const out = Object.create(null) as Record<string, unknown>
      for (const pair of node.items) {
        const keyNode = pair.key as Node | null
        const name = keyNode && isScalar(keyNode) && (typeof keyNode.value === 'string' || typeof keyNode.value === 'number') ? String(keyNode.value) : undefined
        if (name === undefined) {
          const here = keyPathString(path) || 'the top level'
          this.report('error', 'type', keyNode ?? node, path, `expected a key name in ${here}, got ${describeNode(keyNode)}`, 'write a plain word as the key')
          continue
        }
        if (typeof (keyNode as {value?: unknown}).value === 'number') this.numberKeys.add(pathKey([...path, name]))
        out[name] = this.convert(pair.value as Node | null, [...path, name], keyNode, resolving)
      }
      resolving.delete(node)
      return out
    }
    if (isSeq(node)) {
      resolving.add(node)
      const out = node.items.map((item, i) => this.convert(item as Node | null, [...path, i], null, resolving))
      resolving.delete(node)
      return out
    }
    if (isScalar(node)) return node.value === null && node.source === 'null' ? NULL_WORD : (node.value ?? null)
    return null
  }

  /** Reports at what is written at `path`: its value, or its key. */
  reportAt(severity: IssueSeverity, kind: IssueKind, path: KeyPath, at: 'value' | 'key', message: string, fix: string): void {
    this.report(severity, kind, this.nodeFor(path, at), path, message, fix)
  }

  /** The node an issue points at: the value (its key when it is empty), the key, or the enclosing section. */
  private nodeFor(path: readonly PropertyKey[], at: 'value' | 'key'): Node | null {
    const here = this.written.get(pathKey(path))
    if (here) {
      if (at === 'key') return here.key ?? here.node
      const {node} = here
      return node && node.range && node.range[0] !== node.range[1] ? node : (here.key ?? node)
    }
    if (path.length === 0) return this.doc.contents as Node | null
    return this.nodeFor(path.slice(0, -1), 'key')
  }

  /** Line and column of what is at `path`, for values that cite where they were written (rules). */
  positionOf(path: readonly PropertyKey[]): {line: number; column: number} {
    return this.position(this.nodeFor(path, 'key'))
  }

  /** Records each of zod's issues as a ConfigIssue that points into the file. */
  addSchemaIssues(issues: readonly z.core.$ZodIssue[]): void {
    for (const issue of issues) {
      if (this.brokenAliases.has(pathKey(issue.path))) continue
      const path = issue.path.map((p) => (typeof p === 'number' ? p : String(p)))
      const d = (issue.code === 'custom' ? (issue.params as {diagnostic?: Diagnostic} | undefined)?.diagnostic : undefined) ?? {
        kind: 'type' as const,
        message: issue.message,
        fix: 'see docs/configuration.md',
      }
      if (d.kind === 'unknown-key' && this.numberKeys.has(pathKey(path))) {
        const section = path.slice(0, -1)
        const here = keyPathString(section) || 'the top level'
        this.report('error', 'type', this.nodeFor(path, 'key'), section, `expected a key name in ${here}, got ${String(path[path.length - 1])}`, 'write a plain word as the key')
        continue
      }
      const {message, fix, at} = this.explain(d, path)
      this.report('error', d.kind, this.nodeFor(path, at), path, message, fix)
    }
  }

  /** Messages that name where they are (a section, a sibling's line) are completed here, where the path is known. */
  private explain(d: Diagnostic, path: KeyPath): {message: string; fix: string; at: 'value' | 'key'} {
    const parts: Record<string, string> = {key: String(path[path.length - 1] ?? ''), section: keyPathString(path.slice(0, -1)) || 'the top level', path: keyPathString(path)}
    // One pass, so a key that happens to contain "{section}" is not filled in again.
    const fill = (text: string) => text.replace(/\{(key|section|path)\}/g, (_, name: string) => parts[name]!)
    const at = d.at ?? 'value'
    if (d.kind === 'unknown-key' && d.allowed) {
      const name = String(path[path.length - 1])
      const suggestion = closest(name, d.allowed)
      return {
        message: fill(`unknown key "{key}" in {section}${suggestion ? `; did you mean "${suggestion}"?` : ''}`),
        fix: suggestion ? `rename it to "${suggestion}"` : d.fix,
        at,
      }
    }
    if (d.kind === 'duplicate' && d.sameAs !== undefined) {
      // path: [...list, i, key]; the item that has the value first is [...list, sameAs].
      const list = path.slice(0, -2)
      const key = String(path[path.length - 1])
      const where = keyPathString(list)
      const first = this.position(this.nodeFor([...list, d.sameAs, key], 'value')).line
      return {message: `${d.message} in ${where} (first used at line ${first})`, fix: `give each item of ${where} a different ${key}`, at}
    }
    return {message: fill(d.template ?? d.message), fix: fill(d.fix), at}
  }
}

const BROKEN_ALIAS: unique symbol = Symbol('broken alias')

/** How a YAML node is shown after "got", for the few messages made before validation. */
function describeNode(node: Node | null): string {
  if (!node) return 'nothing'
  if (isMap(node)) return 'a map'
  if (isSeq(node)) return 'a list'
  if (isScalar(node)) return node.value === null || node.value === undefined ? 'nothing' : typeof node.value === 'string' ? JSON.stringify(node.value) : String(node.value)
  return 'an unsupported YAML value'
}
