/**
 * PostgreSQL's text forms of composite values `(a,"b c",)` and arrays `{a,"b c",NULL}`, parsed
 * and written back so that masking can reach inside whole-row output without breaking it.
 */

/** Parses a record literal into its fields (null for SQL NULL); undefined when it is not one. */
export function parseRecord(text: string): (string | null)[] | undefined {
  if (text.length < 2 || text[0] !== '(' || text[text.length - 1] !== ')') return undefined
  const fields: (string | null)[] = []
  let i = 1
  const end = text.length - 1
  for (;;) {
    let value = ''
    let quoted = false
    let any = false
    while (i < end && text[i] !== ',') {
      const c = text[i]!
      any = true
      if (c === '"') {
        quoted = true
        i++
        while (i < end) {
          const q = text[i]!
          if (q === '\\') {
            value += text[i + 1] ?? ''
            i += 2
          } else if (q === '"') {
            if (text[i + 1] === '"') {
              value += '"'
              i += 2
            } else {
              i++
              break
            }
          } else {
            value += q
            i++
          }
        }
      } else if (c === '\\') {
        value += text[i + 1] ?? ''
        i += 2
      } else {
        value += c
        i++
      }
    }
    fields.push(any || quoted ? value : null)
    if (i >= end) break
    i++ // the comma
  }
  return fields
}

function quoteIfNeeded(value: string, special: RegExp): string {
  if (value !== '' && !special.test(value)) return value
  return `"${value.replace(/(["\\])/g, '\\$1')}"`
}

export function formatRecord(fields: (string | null)[]): string {
  return `(${fields.map((f) => (f === null ? '' : quoteIfNeeded(f, /[",()\\\s]/))).join(',')})`
}

/** An array literal's elements, nested for multi-dimensional arrays. */
export type ArrayTree = (string | null | ArrayTree)[]

export function parseArray(text: string): ArrayTree | undefined {
  let s = text
  // A leading dimension decoration `[1:2]={...}` is kept out of the element parse.
  const eq = s.startsWith('[') ? s.indexOf('=') : -1
  if (eq >= 0) s = s.slice(eq + 1)
  let i = 0
  const parseLevel = (): ArrayTree | undefined => {
    if (s[i] !== '{') return undefined
    i++
    const out: ArrayTree = []
    if (s[i] === '}') {
      i++
      return out
    }
    for (;;) {
      while (s[i] === ' ') i++
      if (s[i] === '{') {
        const sub = parseLevel()
        if (!sub) return undefined
        out.push(sub)
      } else if (s[i] === '"') {
        i++
        let v = ''
        while (i < s.length && s[i] !== '"') {
          if (s[i] === '\\') i++
          v += s[i] ?? ''
          i++
        }
        if (s[i] !== '"') return undefined
        i++
        out.push(v)
      } else {
        let v = ''
        while (i < s.length && s[i] !== ',' && s[i] !== '}') {
          if (s[i] === '\\') i++
          v += s[i] ?? ''
          i++
        }
        v = v.trim()
        out.push(v.toUpperCase() === 'NULL' ? null : v)
      }
      while (s[i] === ' ') i++
      if (s[i] === ',') {
        i++
        continue
      }
      if (s[i] === '}') {
        i++
        return out
      }
      return undefined
    }
  }
  const tree = parseLevel()
  return tree && i === s.length ? tree : undefined
}

export function formatArray(tree: ArrayTree): string {
  return `{${tree
    .map((e) => (e === null ? 'NULL' : Array.isArray(e) ? formatArray(e) : e.toUpperCase() === 'NULL' ? `"${e}"` : quoteIfNeeded(e, /[",{}\\\s]/)))
    .join(',')}}`
}

export function mapArray(tree: ArrayTree, fn: (v: string) => string | null): ArrayTree {
  return tree.map((e) => (e === null ? null : Array.isArray(e) ? mapArray(e, fn) : fn(e)))
}
