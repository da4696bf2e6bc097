/**
 * Documents dbgate reads from the bucket or the network (published keys and policies, approval
 * records, event lines) are checked against one zod schema per document before anything trusts
 * them; the TypeScript types are inferred from those schemas, so type and check cannot drift.
 * A document that fails says which document, which field and what was expected; what its reader
 * then does (skip and report it, refuse it, move it aside) is that reader's contract.
 */
import type {z} from 'zod'

export class DocumentError extends Error {
  override name = 'DocumentError'
  constructor(
    /** What was read, as a person would name it: `published key keys/ab12.json`. */
    readonly document: string,
    /** One line a problem: `field: what was expected`. */
    readonly problems: string[],
  ) {
    super(`${document} is not valid: ${problems.join('; ')}`)
  }
}

/** `identity.subject`, `history[2].issuer`, or `(the document)` for the top level. */
function fieldOf(path: readonly PropertyKey[]): string {
  let out = ''
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : `${out ? '.' : ''}${String(p)}`
  return out || '(the document)'
}

/** The schema's complaints about `value`, one line each, or undefined when it conforms. */
export function problemsOf(schema: z.ZodType, value: unknown): string[] | undefined {
  const result = schema.safeParse(value)
  if (result.success) return undefined
  return result.error.issues.slice(0, 5).map((i) => `${fieldOf(i.path)}: ${i.message.replace(/^Invalid input: /, '')}`)
}

/**
 * `value` checked against `schema`, returned as it was read (unknown fields kept), so that
 * digests and signatures over the document still cover exactly what was in the bucket.
 */
export function checkDocument<S extends z.ZodType>(schema: S, value: unknown, document: string): z.infer<S> {
  const problems = problemsOf(schema, value)
  if (problems) throw new DocumentError(document, problems)
  return value as z.infer<S>
}

/** Parses JSON text and checks it. The parser's own message is not kept: it quotes the input, which may hold a token. */
export function parseDocument<S extends z.ZodType>(schema: S, text: string, document: string): z.infer<S> {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    throw new DocumentError(document, ['(the document): expected JSON, got text that does not parse'])
  }
  return checkDocument(schema, value, document)
}
