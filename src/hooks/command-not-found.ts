/**
 * `dbgate conect shop`: says what was not found in the words the person typed, suggests the
 * closest command in the same words, and exits 2 (a command-line mistake). It never prompts, so a
 * script that mistypes fails at once instead of waiting for an answer nobody gives.
 */
import {Errors, type Hook} from '@oclif/core'
import {EXIT_USAGE} from '../cli/exit-codes.js'
import {closest} from '../config/suggest.js'

/** The closest command to the words typed, and the words it leaves over as its arguments. */
export function suggestCommand(words: readonly string[], commandIds: readonly string[]): {command: string; rest: string[]} | undefined {
  const spaced = commandIds.map((id) => id.replaceAll(':', ' '))
  for (let take = Math.min(words.length, 3); take >= 1; take--) {
    const typed = words.slice(0, take).join(' ')
    const candidates = spaced.filter((id) => id.split(' ').length === take)
    const best = closest(typed, candidates)
    if (best) return {command: best, rest: words.slice(take)}
  }
  return undefined
}

const hook: Hook<'command_not_found'> = async function (opts) {
  const words = [...opts.id.split(':'), ...(opts.argv ?? [])].filter(Boolean)
  const ids = opts.config.commands.filter((c) => !c.hidden).map((c) => c.id)
  const typed = words.join(' ')
  const found = suggestCommand(words, ids)
  const lines = [`Error: "${typed}" is not a dbgate command.`]
  if (found) lines.push(`Did you mean \`dbgate ${[found.command, ...found.rest].join(' ')}\`?`)
  lines.push('Run `dbgate help` for the list of commands.')
  process.stderr.write(lines.join('\n') + '\n')
  // An ExitError is not printed again by oclif's handler; it only sets the exit code.
  throw new Errors.ExitError(EXIT_USAGE)
}

export default hook
