import {mkdtempSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {describe, expect, it, vi} from 'vitest'

// Each module a tunnel loads only at first use, made to fail as a broken install would: the
// thing that needs it must fail loudly with the loader's error, never carry on without it.
vi.mock('../../src/approvals/verify.js', () => {
  throw new Error('verify.js is broken in this install')
})
vi.mock('../../src/identity/session.js', () => {
  throw new Error('session.js is broken in this install')
})

const {createApprovalGate} = await import('../../src/approvals/gate.js')
const {listRequests} = await import('../../src/approvals/store.js')
const {openBucket} = await import('../../src/bucket/index.js')
const {parseConfigText} = await import('../../src/config/parse.js')
const {withIdentityDefaults} = await import('../../src/identity/config.js')
const {bindIdentity} = await import('../../src/connect/identity.js')
const {checkPolicy} = await import('../../src/policy/check.js')
const {loadParser} = await import('../../src/sql/parser.js')
const {decisionToVerdict} = await import('../../src/policy/verdict.js')
const {sessionWith, statementContext} = await import('../helpers/statement-context.js')

// Vitest reports a mock factory's throw as its own error, with ours as the cause.
const LOAD_FAILED = /error when mocking a module/
const failure = async (p: Promise<unknown>): Promise<string> => {
  const e = (await p.then(() => undefined, (error: Error) => error)) as (Error & {cause?: Error}) | undefined
  return e ? `${e.message} / ${e.cause?.message}` : 'no error'
}

const TARGET = ['targets:', '  app:', '    host: 127.0.0.1', '    port: 1', '    database: app', '    user: app', '    tls: disable', '    reviewers: [dba]', '    approvals: {expiry: 15m}']

function loaded(top: string[] = []) {
  const home = mkdtempSync(path.join(tmpdir(), 'dbgate-deferred-'))
  return {path: '/test/dbgate.yaml', ...parseConfigText([...top, ...TARGET, ''].join('\n'), '/test/dbgate.yaml', {env: {HOME: home}, homeDir: home})}
}

describe('a module deferred to first use that fails to load', () => {
  it('refuses a held statement with the loader error and files no request', async () => {
    await loadParser()
    const config = loaded().config
    const target = config.targets.app!
    const bucketDir = mkdtempSync(path.join(tmpdir(), 'dbgate-deferred-bucket-'))
    const bucket = openBucket(bucketDir)
    const logged: string[] = []
    const gate = createApprovalGate({
      bucket,
      target,
      identity: {subject: 'alice', email: 'alice@example.com', groups: ['engineering'], issuer: 'https://idp.example', kind: 'human', tokenHash: 'x', expiresAt: new Date(Date.now() + 3_600_000)},
      identityConfig: withIdentityDefaults({issuer: 'https://idp.example', clientId: 'dbgate'}),
      record: () => {},
      log: (_level, message) => logged.push(message),
    })
    const sql = 'drop table accounts'
    const verdict = decisionToVerdict(checkPolicy(sql, {rules: [{id: 'ddl-needs-review', match: {class: 'ddl'}, action: 'require_approval', reason: 'DDL'}], pack: 'default', groups: []}).decision, {reviewers: ['dba']})
    expect(verdict.action).toBe('hold')
    const settled = await gate.settle(sql, statementContext(sessionWith([])), verdict)
    expect(settled.action).toBe('reject')
    expect(settled.action === 'reject' && settled.error.message).toMatch(/approval checker could not be loaded: /)
    expect(settled.action === 'reject' && settled.error.message).toMatch(LOAD_FAILED)
    expect(logged.join('\n')).toMatch(/could not load the approval checker/)
    expect(await listRequests(bucket)).toEqual([])
  })

  it('fails the opening of a tunnel whose configuration has an identity', async () => {
    const l = loaded(['identity:', '  issuer: https://idp.example', '  clientId: dbgate'])
    expect(await failure(bindIdentity(l, l.config.targets.app!, {env: {}, onLost: () => {}}))).toMatch(/session\.js is broken in this install/)
  })
})
