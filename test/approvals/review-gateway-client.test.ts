/**
 * A reviewer whose dbgate.yaml names a gateway has no targets of their own: which requests they may
 * decide follows the reviewer groups the gateway wrote into each request (the gateway verifies the
 * decision against its own configuration either way).
 */
import {describe, expect, it} from 'vitest'
import {mayReview} from '../../src/approvals/review.js'
import type {ApprovalRequest} from '../../src/approvals/types.js'
import type {DbgateConfig} from '../../src/config/types.js'
import type {Identity} from '../../src/identity/types.js'

const person = (subject: string, groups: string[]): Identity => ({subject, email: `${subject}@example.com`, groups, issuer: 'https://idp.example', kind: 'human', tokenHash: '', expiresAt: new Date(Date.now() + 60_000)})
const request = {id: 'apr-test', target: 'shop', reviewers: ['dba'], requester: {subject: 'alice'}} as unknown as ApprovalRequest
const gatewayClient = {targets: {}, gateway: {address: {host: 'gw.internal', port: 6432}, api: {host: 'gw.internal', port: 8443}}} as unknown as DbgateConfig
const plainClient = {targets: {}} as unknown as DbgateConfig

describe("a gateway client's right to review", () => {
  it("lets a member of the request's reviewer groups decide it", () => {
    expect(mayReview(gatewayClient, person('bob', ['dba']), request)).toEqual({ok: true})
  })

  it('refuses someone outside those groups, naming them', () => {
    const right = mayReview(gatewayClient, person('dave', ['engineering']), request)
    expect(right).toMatchObject({ok: false, code: 'APPROVAL_NOT_A_REVIEWER'})
    expect(right.ok === false && right.message).toMatch(/its reviewers are dba/)
  })

  it('refuses the requester, whatever their groups', () => {
    expect(mayReview(gatewayClient, person('alice', ['dba']), request)).toMatchObject({ok: false, code: 'APPROVAL_SELF'})
  })

  it('still refuses a configuration with neither the target nor a gateway', () => {
    expect(mayReview(plainClient, person('bob', ['dba']), request)).toMatchObject({ok: false, code: 'APPROVAL_NOT_A_REVIEWER'})
  })

  it('reads a request naming a target every object inherits (planted in the bucket) as a target it does not have, without failing', () => {
    for (const target of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
      const right = mayReview(plainClient, person('bob', ['dba']), {...request, target})
      expect(right, target).toMatchObject({ok: false, code: 'APPROVAL_NOT_A_REVIEWER', message: `Target ${target} is not in your dbgate.yaml, so you cannot review it.`})
    }
  })
})
