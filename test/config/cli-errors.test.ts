import {Errors} from '@oclif/core'
import {describe, expect, it} from 'vitest'
import {toCliError} from '../../src/cli/errors.js'
import {EXIT_USAGE} from '../../src/cli/exit-codes.js'
import {CONFIG_NOT_FOUND, ConfigError} from '../../src/config/errors.js'
import {parseConfigText} from '../../src/config/parse.js'
import {SECRET_ENV_UNSET, SecretError} from '../../src/config/secrets.js'
import {TARGET_NOT_FOUND, TargetNotFoundError, getTarget} from '../../src/config/targets.js'

function sink() {
  const lines: string[] = []
  return {lines, logToStderr: (m: string) => void lines.push(m)}
}

describe('getTarget', () => {
  const {config} = parseConfigText('targets:\n  prod: {host: h, database: d, user: u}\n  staging: {host: h, database: d, user: u}\n', 'dbgate.yaml')

  it('returns the named target', () => {
    expect(getTarget(config, 'staging').name).toBe('staging')
  })

  it('suggests the closest name and lists the others', () => {
    let caught: unknown
    try {
      getTarget(config, 'prd')
    } catch (err) {
      caught = err
    }
    expect(caught).toBeInstanceOf(TargetNotFoundError)
    const err = caught as TargetNotFoundError
    expect(err.code).toBe(TARGET_NOT_FOUND)
    expect(err.message).toBe('unknown target "prd"; did you mean "prod"?')
    expect(err.fix).toBe('use one of: prod, staging (see dbgate targets)')
  })

  it('never finds Object.prototype members', () => {
    expect(() => getTarget(config, 'constructor')).toThrow(TargetNotFoundError)
  })
})

describe('toCliError', () => {
  it('prints a ConfigError in compiler format and exits 2 without oclif printing it again', () => {
    const out = sink()
    const err = toCliError(new ConfigError(CONFIG_NOT_FOUND, 'No dbgate configuration found', {searched: ['/a/dbgate.yaml']}), out) as Errors.CLIError
    expect(out.lines).toEqual(['No dbgate configuration found\nLooked in:\n  /a/dbgate.yaml'])
    expect(err).toBeInstanceOf(Errors.CLIError)
    expect(err.oclif.exit).toBe(EXIT_USAGE)
    expect(err.skipOclifErrorHandling).toBe(true)
    expect(err.code).toBe(CONFIG_NOT_FOUND)
  })

  it('turns secret and target errors into exit 2 with the fix as a suggestion', () => {
    const out = sink()
    const err = toCliError(new SecretError(SECRET_ENV_UNSET, 'environment variable X is not set', 'set X'), out) as Errors.CLIError
    expect(err.oclif.exit).toBe(EXIT_USAGE)
    expect(err.message).toBe('environment variable X is not set')
    expect(err.suggestions).toEqual(['set X'])
    expect((toCliError(new TargetNotFoundError('x', ['prod']), out) as Errors.CLIError).oclif.exit).toBe(EXIT_USAGE)
    expect(out.lines).toEqual([])
  })

  it('leaves other errors alone', () => {
    const original = new Error('boom')
    expect(toCliError(original, sink())).toBe(original)
  })
})
