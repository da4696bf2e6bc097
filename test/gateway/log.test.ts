import {generateKeyPair, SignJWT, UnsecuredJWT} from 'jose'
import {pino} from 'pino'
import {beforeAll, describe, expect, it} from 'vitest'

import {createGatewayLogger, isSecretKey, logFunction, REDACTED, scrubText} from '../../src/gateway/log.js'

function capture(): {lines: string[]; destination: {write(s: string): void}} {
  const lines: string[] = []
  return {lines, destination: {write: (s: string) => void lines.push(s)}}
}

let jwt: string
let unsignedJwt: string
const password = 'S3cr3t-db-pa55word!'

beforeAll(async () => {
  const {privateKey} = await generateKeyPair('ES256')
  jwt = await new SignJWT({sub: 'alice@example.com', groups: ['engineering']})
    .setProtectedHeader({alg: 'ES256', kid: 'k1'})
    .setIssuer('https://login.example.com')
    .setAudience('dbgate')
    .setExpirationTime('5m')
    .sign(privateKey)
  unsignedJwt = new UnsecuredJWT({sub: 'mallory'}).encode()
})

/** Everything a careless caller might do with a token and a password. */
function logEverything(logger: pino.Logger): void {
  const log = logFunction(logger)
  log('info', `sign-in for alice with token ${jwt}`)
  log('warn', 'upstream login', {target: 'prod', password, user: 'app_rw'})
  log('error', 'token refused', {reason: 'token-expired', accessToken: jwt, nested: {deeper: [{refresh_token: 'opaque-refresh-value-123'}]}})
  log('info', 'headers', {headers: {Authorization: `Bearer ${jwt}`, 'x-request-id': 'r1'}})
  log('info', 'client sent', {startup: {user: 'alice', detail: `the password message was ${jwt}`}})
  logger.info('conninfo %s', `host=db.internal password=${password} user=app_rw`)
  logger.error(new Error(`verification failed for ${jwt}`))
  logger.child({session: {token: jwt, id: 's1'}}).info('child logger line')
  log('info', `alg none attempt ${unsignedJwt}`)
  log('info', `dsn postgres://app_rw:${password}@db.internal:5432/app`)
  log('info', `ran ALTER ROLE app_rw PASSWORD '${password}'`)
}

describe('gateway logs', () => {
  it('without redaction, the same calls leak the token and the password (the attack works on a plain logger)', () => {
    const {lines, destination} = capture()
    logEverything(pino({level: 'info'}, destination))
    const out = lines.join('')
    expect(out).toContain(jwt)
    expect(out).toContain(password)
  })

  it('no JWT, JWT segment, password or refresh token reaches the output, wherever it was put', () => {
    const {lines, destination} = capture()
    logEverything(createGatewayLogger({destination}))
    const out = lines.join('')
    expect(lines.length).toBe(11)
    for (const secret of [jwt, ...jwt.split('.'), unsignedJwt.split('.')[1]!, password, 'opaque-refresh-value-123']) {
      expect(out).not.toContain(secret)
    }
    expect(out).toContain(REDACTED)
  })

  it('lines are JSON with level, time and message, and keep what is not secret', () => {
    const {lines, destination} = capture()
    logEverything(createGatewayLogger({destination, base: {gateway: 'gw-1'}}))
    const records = lines.map((l) => JSON.parse(l) as Record<string, any>)
    expect(records[0]).toMatchObject({level: 'info', gateway: 'gw-1', pid: process.pid, msg: `sign-in for alice with token ${REDACTED}`})
    expect(typeof records[0]!.time).toBe('string')
    expect(records[1]).toMatchObject({level: 'warn', target: 'prod', user: 'app_rw', password: REDACTED})
    expect(records[2]).toMatchObject({level: 'error', reason: 'token-expired', accessToken: REDACTED, nested: {deeper: [{refresh_token: REDACTED}]}})
    expect(records[3]!.headers).toEqual({Authorization: REDACTED, 'x-request-id': 'r1'})
    expect(records[5]!.msg).toBe(`conninfo host=db.internal password=${REDACTED} user=app_rw`)
    expect(records[6]).toMatchObject({level: 'error', err: {type: 'Error', message: `verification failed for ${REDACTED}`}})
    expect(records[7]!.session).toEqual({token: REDACTED, id: 's1'})
    expect(records[9]!.msg).toBe(`dsn postgres://app_rw:${REDACTED}@db.internal:5432/app`)
  })

  it('grandchildren and message prefixes are scrubbed too', () => {
    const {lines, destination} = capture()
    const logger = createGatewayLogger({destination})
    logger.child({target: 'prod'}).child({refreshToken: 'opaque-refresh-value-123'}, {msgPrefix: `[${jwt}] `}).info('grandchild')
    const out = lines.join('')
    expect(out).not.toContain('opaque-refresh-value-123')
    expect(out).not.toContain(jwt.split('.')[2]!)
    expect(JSON.parse(lines[0]!)).toMatchObject({target: 'prod', refreshToken: REDACTED, msg: `[${REDACTED}] grandchild`})
  })

  it('honours the level', () => {
    const {lines, destination} = capture()
    const log = logFunction(createGatewayLogger({destination, level: 'warn'}))
    log('info', 'quiet')
    log('debug', 'quieter')
    log('warn', 'loud')
    expect(lines.map((l) => JSON.parse(l).msg)).toEqual(['loud'])
  })

  it('leaves ordinary text alone: host names, versions, SQLSTATEs, prose about tokens', () => {
    for (const text of [
      'connected to db.internal.example.com:5432 (PostgreSQL 17.2.1)',
      'token expired for alice@example.com: run dbgate login',
      'password authentication failed for user "app_rw" (28P01)',
      'file a.b.c written, sha256 3f2a…',
      'basic settings loaded',
    ]) {
      expect(scrubText(text)).toBe(text)
    }
  })

  it('knows secret keys in any spelling', () => {
    for (const key of ['password', 'PGPASSWORD', 'token', 'accessToken', 'access_token', 'refresh-token', 'id_token', 'Authorization', 'clientSecret', 'secret', 'cookie', 'privateKey', 'x-api-key', 'secretAccessKey', 'sessionToken']) {
      expect(isSecretKey(key), key).toBe(true)
    }
    for (const key of ['target', 'user', 'reason', 'tokenExpiresAt', 'token_type', 'keyId', 'code']) {
      expect(isSecretKey(key), key).toBe(false)
    }
  })
})
