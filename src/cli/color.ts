/**
 * Whether to colour output for a stream, by the conventions people set: NO_COLOR (any value)
 * and FORCE_COLOR=0 turn colour off, FORCE_COLOR=1..3 turn it on, otherwise a terminal gets it.
 */
export function colorEnabled(stream: {isTTY?: boolean}, env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.NO_COLOR) return false
  const force = env.FORCE_COLOR
  if (force !== undefined && force !== '') return !['0', 'false'].includes(force.toLowerCase())
  return Boolean(stream.isTTY) && env.TERM !== 'dumb'
}
