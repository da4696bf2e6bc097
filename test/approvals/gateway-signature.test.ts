/**
 * The gateway's signature over a request it files, checked the way a reviewer's dbgate checks it
 * before sealing their sign-in token: against the certificate their gateway presents. The keys are
 * those certificates really carry (P-256, RSA, Ed25519), from a CA made here; the request goes
 * through JSON as it does through the bucket.
 */
import {createPrivateKey, X509Certificate} from 'node:crypto'
import {describe, expect, it} from 'vitest'
import {generateSealKey} from '../../src/approvals/seal.js'
import {checkGatewaySignature, signRequest, type UnsignedRequest} from '../../src/approvals/gateway-signature.js'
import type {ApprovalRequest} from '../../src/approvals/types.js'
import {createCertificateAuthority, issueServerCertificate, type ServerKeyType} from '../../src/util/tls-certs.js'

const ca = createCertificateAuthority('dbgate signature test ca')
function gatewayTls(keyType: ServerKeyType) {
  const pair = issueServerCertificate(ca, ['gw.internal'], {keyType})
  return {key: createPrivateKey(pair.key), cert: new X509Certificate(pair.cert)}
}

function unsigned(id: string, sealKey = generateSealKey().publicKey): UnsignedRequest {
  const at = new Date()
  return {
    v: 1,
    id,
    target: 'prod',
    database: 'app',
    // A field left undefined, as the gate leaves a requester's missing name: gone after JSON.
    requester: {subject: 'alice', email: 'alice@example.com', name: undefined, groups: ['engineering'], issuer: 'https://idp.example', kind: 'human'},
    sessionId: 's-1',
    connectionId: 1,
    sql: 'drop table orders',
    statements: [{text: 'drop table orders', class: 'ddl', command: 'DROP TABLE', action: 'require_approval', ruleId: 'default.ddl-approval'}],
    class: 'ddl',
    ruleId: 'default.ddl-approval',
    reason: 'schema change',
    reviewers: ['dba'],
    createdAt: at.toISOString(),
    expiresAt: new Date(at.getTime() + 900_000).toISOString(),
    windows: false,
    sealKey,
    host: 'gw-1',
    recent: [],
  }
}

/** Signed by `tls`, then through JSON as a reviewer reads it from the bucket. */
const filed = (tls: ReturnType<typeof gatewayTls>, r: UnsignedRequest): ApprovalRequest => JSON.parse(JSON.stringify({...r, gatewaySignature: signRequest(tls, r)})) as ApprovalRequest

describe('a request signed by the gateway that filed it', () => {
  for (const keyType of ['ec', 'rsa', 'ed25519'] as const) {
    it(`verifies against the gateway's own certificate (${keyType} key), and against no other`, () => {
      const gw = gatewayTls(keyType)
      const request = filed(gw, unsigned('apr-genuine1'))
      expect(checkGatewaySignature(request, gw.cert)).toEqual({ok: true})
      // Another gateway's certificate, even from the same CA: not the key that signed.
      expect(checkGatewaySignature(request, gatewayTls(keyType).cert)).toMatchObject({ok: false, why: 'other-certificate'})
    })
  }

  it('refuses every way of reusing, altering or forging a genuine signature', () => {
    const gw = gatewayTls('ec')
    const planter = gatewayTls('ec')
    const genuine = filed(gw, unsigned('apr-genuine1'))
    const sig = genuine.gatewaySignature!
    const theirs = generateSealKey().publicKey
    const forgeries: [string, ApprovalRequest, string][] = [
      ['no signature at all (written by hand, or by a local tunnel)', {...unsigned('apr-planted1', theirs)} as ApprovalRequest, 'none'],
      ["the genuine request with the planter's seal key swapped in", {...genuine, sealKey: theirs}, 'bad-signature'],
      ['the genuine request showing other SQL', {...genuine, sql: 'select 1', statements: [{...genuine.statements[0]!, text: 'select 1'}]}, 'bad-signature'],
      ['the genuine request naming another requester', {...genuine, requester: {...genuine.requester, subject: 'carol', email: 'carol@example.com'}}, 'bad-signature'],
      ['the genuine request naming other reviewer groups', {...genuine, reviewers: ['engineering']}, 'bad-signature'],
      ['the genuine request with a later expiry', {...genuine, expiresAt: new Date(Date.now() + 86_400_000).toISOString()}, 'bad-signature'],
      ['the genuine signature on another request id', {...genuine, id: 'apr-planted2'}, 'bad-signature'],
      ["signed by the planter's own certificate", filed(planter, unsigned('apr-planted3', theirs)), 'other-certificate'],
      ["signed by the planter's key, naming the gateway's certificate", {...filed(planter, unsigned('apr-planted4', theirs)), gatewaySignature: {...filed(planter, unsigned('apr-planted4', theirs)).gatewaySignature!, cert: sig.cert}}, 'bad-signature'],
      ['an unknown algorithm name', {...genuine, gatewaySignature: {...sig, alg: 'none'}}, 'other-certificate'],
      ['a signature that is not base64 of anything', {...genuine, gatewaySignature: {...sig, signature: '!!'}}, 'bad-signature'],
      ['an empty signature', {...genuine, gatewaySignature: {...sig, signature: ''}}, 'bad-signature'],
    ]
    for (const [what, request, why] of forgeries) expect(checkGatewaySignature(request, gw.cert), what).toMatchObject({ok: false, why})
    expect(checkGatewaySignature(genuine, gw.cert)).toEqual({ok: true})
  })
})
