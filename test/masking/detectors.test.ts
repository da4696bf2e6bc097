import {describe, expect, it} from 'vitest'
import {bufferMightContainSensitive, bufferNeeds, ibanValid, isJwt, luhnValid, maskFindings, mightContainSensitive, scanText, textNeeds} from '../../src/masking/detectors.js'

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
    // phone numbers inside free text
    ['call me at +1-555-052-3041 tomorrow', ['phone']],
    ['office +44 20 7946 0958, ask for Ann', ['phone']],
    ['mobile: (555) 123-4567', ['phone']],
    ['ring 555.123.4567 after six', ['phone']],
    ['Berlin 030/1234 5678 or 0171 2345678', ['phone', 'phone']],
    ['{"contact": {"phone": "+49 30 1234567"}}', ['phone']],
  ])('%s', (text, expected) => {
    expect(kinds(text)).toEqual(expected)
  })

  it.each([
    'order 12345678901 shipped',
    'paid 1,234,567.89 on 2026-10-01 12:00:00',
    'dates 01-02-2026, 2026-10-01, 01/02/2026 12:00 and 12.03.2026',
    'ip 192.168.100.200 and 10.0.0.1, version 18.4.1',
    'uuid 123e4567-e89b-12d3-a456-426614174000',
    'iso 2026-10-01T12:00:00+02:00, interval 1 day 02:00:00',
    'ids 1234567890 and 0000000001 and #4242',
    'ssn 912-34-5678',
    'range 100-200-300, score 98.6, temp -12.5',
    'lat 52.520008 lon 13.404954',
  ])('finds no phone number in %s', (text) => {
    expect(kinds(text).filter((k) => k === 'phone')).toEqual([])
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
    // Nine digits in groups: too few for a phone number, a card or an SSN.
    expect(mightContainSensitive('call 555 123 456')).toBe(false)
    expect(mightContainSensitive('call 555 123 4567')).toBe(true)
    expect(mightContainSensitive('ssn: 912-34-5678')).toBe(true)
    expect(mightContainSensitive('card 4242 4242 4242 4242')).toBe(true)
    expect(bufferMightContainSensitive(Buffer.from('plain words only'))).toBe(false)
    expect(bufferMightContainSensitive(Buffer.from('key AKIAIOSFODNN7EXAMPLE'))).toBe(true)
  })

  it('finds in a value full of hex and digits only what is there', () => {
    // The benchmark's `note`: an md5 and a zero-padded number, nine digits in a row but no card.
    expect(kinds('c4ca4238a0b923820dcc509a6f75849b-00000001')).toEqual([])
    expect(kinds('a87ff679a2f3e71d9181a67b7542122c-4242424242424242')).toEqual(['card-luhn'])
  })

  /** Texts made of the characters detectors look for, in random order, from a fixed seed. */
  function corpus(count: number): string[] {
    let seed = 42
    const rand = (n: number) => {
      // 32-bit integer arithmetic: in doubles the product loses its low bits and the sequence falls into short cycles.
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0
      return (seed >>> 8) % n
    }
    const pieces = ['4', '2', '1', '9', '0', ' ', '-', '  ', '--', 'DE', 'GB', '89', 'X', 'a', 'é', '€', '@', '.', 'co', 'uk', 'AKIA', 'IOSFODNN7EXAMPLE', 'eyJ', 'xoxb-', 'sk_live_', 'ghp_', 'AIza', 'BEGIN', '\n', '_', '912-34-5678', '4242 4242 4242 4242', 'DE89370400440532013000', 'a.b@c.io', ' AKIAIOSFODNN7EXAMPLE ', '+', '(', ')', '/', '555', '0', '+1-555-052-3041', '(555) 123-4567', '030 1234 5678']
    return Array.from({length: count}, () => Array.from({length: 3 + rand(14)}, () => pieces[rand(pieces.length)]).join(''))
  }

  it('finds exactly what running every detector finds: skipping a detector never loses a finding', () => {
    const seen = new Set<string>()
    for (const text of corpus(5000)) {
      const found = scanText(text)
      expect(found, text).toEqual(scanText(text, ~0))
      for (const f of found) seen.add(f.detector)
    }
    // The corpus exercises the detectors whose needs are shapes rather than literals.
    for (const d of ['email', 'ssn', 'card-luhn', 'iban', 'aws-access-key', 'phone']) expect(seen).toContain(d)
  })

  it("tells the same needs from a value's UTF-8 bytes as from its text", () => {
    for (const text of corpus(5000)) {
      if (text.length < 9) continue
      expect(bufferNeeds(Buffer.from(text, 'utf8')), text).toBe(textNeeds(text))
    }
  })
})
