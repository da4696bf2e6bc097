/** "Did you mean …?" for misspelt keys and enum values. */

/** Optimal string alignment distance: Levenshtein plus adjacent transpositions ("hots" → "host" is 1). */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({length: a.length + 1}, (_, i) => [i, ...new Array<number>(b.length).fill(0)])
  for (let j = 1; j <= b.length; j++) d[0]![j] = j
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1)
      d[i]![j] = v
    }
  }
  return d[a.length]![b.length]!
}

/** Folds the spellings people mix up: `client_id`, `client-id` and `ClientID` all become `clientid`. */
function fold(s: string): string {
  return s.toLowerCase().replace(/[-_\s]/g, '')
}

/**
 * The candidate closest to `input`, or undefined when nothing is close enough to be a plausible
 * typo (so we never suggest "port" for "reviewers").
 */
export function closest(input: string, candidates: readonly string[]): string | undefined {
  const folded = fold(input)
  const sameFolded = candidates.find((c) => fold(c) === folded)
  if (sameFolded !== undefined) return sameFolded
  let best: string | undefined
  let bestDistance = Infinity
  for (const c of candidates) {
    const distance = editDistance(folded, fold(c))
    if (distance < bestDistance) {
      best = c
      bestDistance = distance
    }
  }
  const limit = Math.max(1, Math.floor(folded.length / 3))
  return bestDistance <= limit ? best : undefined
}
