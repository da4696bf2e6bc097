import {describe, expect, it} from 'vitest'
import {APPROVAL_BAD_INPUT, APPROVAL_SELF, ApprovalError} from '../../src/approvals/errors.js'
import {describeFailure, failureJson, formatFailure} from '../../src/cli/errors.js'
import {EXIT_AUTH, EXIT_USAGE} from '../../src/cli/exit-codes.js'
import {IdpUnreachableError, LoginAbortedError, LoginDeniedError} from '../../src/identity/errors.js'
import {CONFIG_NOT_FOUND, ConfigError} from '../../src/config/errors.js'
import {parseConfigText} from '../../src/config/parse.js'
import {SECRET_ENV_UNSET, SecretError} from '../../src/config/secrets.js'
import {TARGET_NOT_FOUND, TargetNotFoundError, getTarget} from '../../src/config/targets.js'

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

describe('describeFailure', () => {
  it('prints a ConfigError in compiler format and exits 2, with its issues under --json', () => {
    const f = describeFailure(new ConfigError(CONFIG_NOT_FOUND, 'No dbgate configuration found', {searched: ['/a/dbgate.yaml']}))
    expect(f.message).toBe('No dbgate configuration found\nLooked in:\n  /a/dbgate.yaml')
    expect(f.exit).toBe(EXIT_USAGE)
    expect(f.code).toBe(CONFIG_NOT_FOUND)
    expect(failureJson(f).error).toMatchObject({code: CONFIG_NOT_FOUND, exitCode: 2, message: 'No dbgate configuration found', searched: ['/a/dbgate.yaml']})
  })

  it('turns secret and target errors into exit 2 with the fix as the next step', () => {
    const f = describeFailure(new SecretError(SECRET_ENV_UNSET, 'environment variable X is not set', 'set X'))
    expect(f).toMatchObject({exit: EXIT_USAGE, message: 'environment variable X is not set', next: 'set X'})
    expect(formatFailure(f)).toBe('Error: environment variable X is not set\nCode: DBGATE_SECRET_ENV_UNSET\nTry this: set X')
    expect(describeFailure(new TargetNotFoundError('x', ['prod'])).exit).toBe(EXIT_USAGE)
  })

  it('ends anything it does not know with exit 1 and its message', () => {
    expect(describeFailure(new Error('boom'))).toEqual({message: 'boom', exit: 1})
  })

  it('gives every identity and approval code its exit code from one table', () => {
    expect(describeFailure(new LoginAbortedError()).exit).toBe(130)
    expect(describeFailure(new LoginDeniedError()).exit).toBe(EXIT_AUTH)
    expect(describeFailure(new IdpUnreachableError('https://idp.example')).exit).toBe(1)
    expect(describeFailure(new ApprovalError(APPROVAL_SELF, 'mine')).exit).toBe(EXIT_AUTH)
    expect(describeFailure(new ApprovalError(APPROVAL_BAD_INPUT, 'bad')).exit).toBe(EXIT_USAGE)
  })
})
