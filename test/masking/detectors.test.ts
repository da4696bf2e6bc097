import {describe, expect, it} from 'vitest'
import {bufferMightContainSensitive, ibanValid, isJwt, luhnValid, maskFindings, mightContainSensitive, scanText} from '../../src/masking/detectors.js'

const JWT = 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U'

describe('checksums', () => {
  it('accepts Luhn-valid card numbers and rejects one-digit changes', () => {
    expect(luhnValid('4242424242424242')).toBe(true)
    expect(luhnValid('4111111111111111')).toBe(true)
    expect(luhnValid('378282246310005')).toBe(true)
    expect(luhnValid('4242424242424241')).toBe(false)
    expect(luhnValid('42424242')).toBe(false)
    expect(luhnValid('4242-4242-4242-4242')).toBe(false)
  })

  it('accepts IBANs whose mod-97 check is 1, with or without spaces', () => {
    expect(ibanValid('DE89370400440532013000')).toBe(true)
    expect(ibanValid('GB82 WEST 1234 5698 7654 32')).toBe(true)
    expect(ibanValid('gb82west12345698765432')).toBe(true)
    expect(ibanValid('DE89370400440532013001')).toBe(false)
    expect(ibanValid('XX00')).toBe(false)
  })

  it('recognises a JWT by its decodable JSON header and payload', () => {
    expect(isJwt(JWT)).toBe(true)
    expect(isJwt('eyJub3QiOiJhIGp3dCJ9.abc.def')).toBe(false)
    expect(isJwt('a.b.c')).toBe(false)
  })
})

describe('scanText', () => {
  const kinds = (text: string) => scanText(text).map((f) => f.detector)

  it.each([
    ['mail me: first.last+tag@sub.example.co.uk today', ['email']],
    ['card 4242 4242 4242 4242 exp 12/30', ['card-luhn']],
    ['card 4242-4242-4242-4241 is not valid', []],
    ['ssn 912-34-5678', ['ssn']],
    ['ssn 000-12-3456 is never issued', []],
    ['iban DE89 3704 0044 0532 0130 00', ['iban']],
    [`bearer ${JWT}`, ['jwt']],
    ['aws AKIAIOSFODNN7EXAMPLE', ['aws-access-key']],
    ['gh ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789', ['github-token']],
    ['slack xoxb-123456789012-abcdefghijkl', ['slack-token']],
    ['stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc', ['stripe-key']],
    ['-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----', ['private-key']],
    ['order 12345 shipped on 2026-10-01', []],
    ['', []],
  ])('%s', (text, expected) => {
    expect(kinds(text)).toEqual(expected)
  })

  it('reports positions, so several findings in one text are each replaced', () => {
    const out = maskFindings('a@b.io and 912-34-5678', (_v, f) => `<${f.category}>`)
    expect(out?.text).toBe('<email> and <national_id>')
    expect(maskFindings('nothing here at all', () => 'x')).toBeUndefined()
  })

  it('skips regular expressions for text that cannot hold anything', () => {
    expect(mightContainSensitive('shipped')).toBe(false)
    expect(mightContainSensitive('order 123 of 2026')).toBe(false)
    expect(mightContainSensitive('x@y.z and more')).toBe(true)
    expect(mightContainSensitive('call 555 123 4567')).toBe(true)
    expect(bufferMightContainSensitive(Buffer.from('plain words only'))).toBe(false)
    expect(bufferMightContainSensitive(Buffer.from('key AKIAIOSFODNN7EXAMPLE'))).toBe(true)
  })
})
