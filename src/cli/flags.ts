/** Flags several commands share, so they are spelled and documented the same everywhere. */
import {Flags} from '@oclif/core'
import {closest} from '../config/suggest.js'
import {readDuration, parseWhen, DURATION_EXAMPLES} from '../util/duration.js'

export const configFlag = Flags.string({
  summary: 'Path to dbgate.yaml.',
  description: 'Default: ./dbgate.yaml, then $XDG_CONFIG_HOME/dbgate/config.yaml (~/.config/dbgate/config.yaml). A ./dbgate.yaml found that way gets your sign-in (its gateway, approve, deny) only once trusted: see `dbgate config trust`.',
  env: 'DBGATE_CONFIG',
  helpValue: '<path>',
})

export const bucketFlags = {
  config: configFlag,
  bucket: Flags.string({
    char: 'b',
    summary: 'Bucket holding the recordings: s3://bucket/prefix or file://DIR.',
    description: 'Default: `bucket` from the configuration; without a configuration, file://$XDG_DATA_HOME/dbgate/bucket.',
    env: 'DBGATE_BUCKET',
    helpValue: '<url>',
  }),
}

/** `--signer` on `sessions verify` and `report`: the only keys whose signatures count (src/audit/trust.ts). */
export const signerFlag = Flags.string({
  summary: 'Accept only signatures by this key (key id, or a gateway\'s name); repeatable. Replaces recording.trustedSigners.',
  description: 'A session signed by any other key fails verification, even if that key is correctly published in the bucket. A key id is the stronger name: a gateway name matches every key published under it.',
  multiple: true,
  helpValue: '<key-id|gateway>',
})

export const spoolFlag = Flags.string({
  summary: 'Local spool directory.',
  description: 'Default: $XDG_STATE_HOME/dbgate/spool (~/.local/state/dbgate/spool).',
  env: 'DBGATE_SPOOL_DIR',
  helpValue: '<dir>',
})

export const filterFlags = {
  user: Flags.string({char: 'u', summary: 'Only sessions of this user: the whole e-mail or subject, or the e-mail\'s part before the @ (any case).', helpValue: '<user>'}),
  target: Flags.string({char: 't', summary: 'Only sessions on this target.', helpValue: '<name>'}),
  since: whenFlag('Only sessions started since: a duration before now (7d, 12h, 1h30m, 1y), a UTC day (2026-01-31) or a date and time with its zone (2026-01-31T08:00:00Z).'),
  until: whenFlag('Only sessions started until: a duration before now or an ISO date (a bare date means the end of that day).', {endOfDay: true}),
  denied: Flags.boolean({summary: 'Only sessions (or statements) with a denied statement, and sign-ins the gateway refused.', default: false}),
  client: Flags.string({summary: 'Only sessions through this client: mcp (AI agents, `dbgate mcp`) or connect.', options: ['mcp', 'connect'], helpValue: '<client>'}),
  agent: Flags.boolean({summary: 'Only AI agent sessions (same as --client mcp).', default: false, exclusive: ['client']}),
}

/** A point in time: a duration before now (7d, 1h30m, 1y) or an ISO date; a bad value is a usage error (exit 2). */
export function whenFlag(summary: string, opts: {endOfDay?: boolean} = {}) {
  return Flags.custom<Date>({summary, helpValue: '<when>', parse: async (input) => parseWhen(input, new Date(), opts)})()
}

/** A length of time in the one duration grammar (src/util/duration.ts); a bad value is a usage error (exit 2). */
export function durationFlag(summary: string, extra: {char?: 'w'} = {}) {
  return Flags.custom<number>({
    summary,
    helpValue: '<duration>',
    ...extra,
    parse: async (input) => {
      const r = readDuration(input)
      if (!r.ok) throw new Error(r.problem)
      return r.ms
    },
  })()
}

export {DURATION_EXAMPLES}

/** A request's digest as `dbgate approvals show` prints it: a decision is made only if the request is still exactly that. */
export const digestFlag = Flags.custom<string>({
  summary: 'Decide only if the request is still the one `dbgate approvals show` printed with this digest.',
  helpValue: '<digest>',
  parse: async (input) => {
    const d = input.trim().toLowerCase()
    if (!/^[0-9a-f]{64}$/.test(d)) throw new Error(`takes the 64 hexadecimal characters \`dbgate approvals show <id>\` prints after "digest"; ${JSON.stringify(input.slice(0, 80))} is not one`)
    return d
  },
})()

/**
 * A flag that takes one of a fixed set of values: anything else is a usage error (exit 2) that
 * lists them, with a suggestion for a near miss, or `hint` for a value people expect to work.
 */
export function oneOfFlag(summary: string, values: readonly string[], opts: {helpValue: string; hint?: (value: string) => string | undefined}) {
  return Flags.custom<string>({
    summary: `${summary} One of: ${values.join(', ')}.`,
    helpValue: opts.helpValue,
    parse: async (input) => {
      const value = input.trim().toLowerCase()
      if (values.includes(value)) return value
      const near = closest(value, values)
      const hint = opts.hint?.(value) ?? (near ? `did you mean ${near}?` : undefined)
      throw new Error(`${JSON.stringify(input)} is not one of ${values.join(', ')}${hint ? `; ${hint}` : ''}`)
    },
  })()
}
