import {describe, expect, it} from 'vitest'
import {addressOf, quoteUntrusted, RepeatLimitedLog, type RepeatLogOptions} from '../../src/gateway/log-limits.js'

/** A limiter on a clock and a timer the test moves by hand. */
function limiter(options: RepeatLogOptions = {}) {
  const lines: string[] = []
  let clock = 0
  let timer: {fn: () => void; at: number} | undefined
  const log = new RepeatLimitedLog((level, message) => lines.push(`${level} ${message}`), {
    intervalMs: 10_000,
    ...options,
    now: () => clock,
    schedule: (fn, ms) => {
      const t = {fn, at: clock + ms}
      timer = t
      return () => {
        if (timer === t) timer = undefined
      }
    },
  })
  return {
    log,
    lines,
    /** Moves the clock, running the timer if it is due. */
    advance(ms: number) {
      clock += ms
      if (timer && timer.at <= clock) {
        const t = timer
        timer = undefined
        t.fn()
      }
    },
  }
}

describe('repeat-limited log lines', () => {
  it('writes the first line from each source at once and summarises its repeats with their count', () => {
    const t = limiter()
    for (let i = 0; i < 500; i++) t.log.write('warn', 'sign-ins refused (token-signature)', '10.0.0.5', `sign-in refused (token-signature) from 10.0.0.5:${4000 + i}`)
    expect(t.lines).toEqual(['warn sign-in refused (token-signature) from 10.0.0.5:4000'])

    // Someone else, right after, is not held back by the flood.
    t.log.write('warn', 'sign-ins refused (token-expired)', '10.0.0.9', 'sign-in refused (token-expired) from 10.0.0.9:5000')
    expect(t.lines).toHaveLength(2)
    expect(t.lines[1]).toBe('warn sign-in refused (token-expired) from 10.0.0.9:5000')

    t.advance(10_000)
    expect(t.lines).toHaveLength(3)
    expect(t.lines[2]).toBe('warn 499 more like this from 10.0.0.5 in the last 10s (not logged one by one); the last: sign-in refused (token-signature) from 10.0.0.5:4499')
  })

  it('keeps summarising a source that goes on, and writes a source that went quiet for an interval at once again', () => {
    const t = limiter()
    const refuse = () => t.log.write('warn', 'connections refused before TLS (no-tls)', '10.0.0.5', 'refused a connection from 10.0.0.5 before TLS')
    refuse()
    for (let interval = 0; interval < 3; interval++) {
      for (let i = 0; i < 100; i++) refuse()
      t.advance(10_000)
    }
    expect(t.lines).toEqual([
      'warn refused a connection from 10.0.0.5 before TLS',
      ...Array(3).fill(expect.stringMatching(/^warn 100 more like this from 10\.0\.0\.5 in the last 10s/)),
    ])

    // One interval with nothing from it (no line), then it is news again.
    t.advance(10_000)
    t.advance(10_000)
    refuse()
    expect(t.lines).toHaveLength(5)
    expect(t.lines[4]).toBe('warn refused a connection from 10.0.0.5 before TLS')
  })

  it('stays bounded however many sources appear, and still counts every line', () => {
    const t = limiter({maxSources: 50, maxNewPerInterval: 20})
    for (let i = 0; i < 100_000; i++) t.log.write('warn', 'sign-ins refused (token-malformed)', `fd00::${i.toString(16)}`, `sign-in refused (token-malformed) from [fd00::${i.toString(16)}]`)
    t.advance(10_000)
    expect(t.lines).toHaveLength(21)
    expect(t.lines.slice(0, 20)).toEqual(Array.from({length: 20}, (_, i) => `warn sign-in refused (token-malformed) from [fd00::${i.toString(16)}]`))
    expect(t.lines[20]).toMatch(/^warn 99980 more sign-ins refused \(token-malformed\) from other sources in the last 10s \(not logged one by one/)

    // The next interval starts with a budget of new sources again.
    t.log.write('warn', 'sign-ins refused (token-malformed)', '10.1.1.1', 'sign-in refused (token-malformed) from 10.1.1.1')
    expect(t.lines.at(-1)).toBe('warn sign-in refused (token-malformed) from 10.1.1.1')
  })

  it('summarises what is pending when it closes, so no count is lost at shutdown', () => {
    const t = limiter()
    for (let i = 0; i < 3; i++) t.log.write('info', 'cancel requests with an unknown key', '10.0.0.5', 'ignored a cancel request with an unknown key')
    t.advance(2_500)
    t.log.close()
    expect(t.lines).toEqual(['info ignored a cancel request with an unknown key', 'info 2 more like this from 10.0.0.5 in the last 3s (not logged one by one); the last: ignored a cancel request with an unknown key'])
  })
})

describe('text a client chose, in a log line', () => {
  it('cannot end the line or disguise it: line breaks, controls, bidi overrides, quotes and backslashes are escaped', () => {
    const user = 'alice"\n{"level":"info","msg":"signed in"}\r\u2028\u202egnp.exe\\\u0007\u{e0041}'
    const quoted = quoteUntrusted(user)
    expect(quoted).toBe('"alice\\"\\u000a{\\"level\\":\\"info\\",\\"msg\\":\\"signed in\\"}\\u000d\\u2028\\u202egnp.exe\\\\\\u0007\\u{e0041}"')
    expect(quoted).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e]/)
  })

  it('is cut to a sane length, saying how long it was', () => {
    expect(quoteUntrusted('x'.repeat(5000))).toBe(`"${'x'.repeat(64)}"… (cut from 5000 characters)`)
    expect(quoteUntrusted('prod')).toBe('"prod"')
  })

  it('counts repeats by address, not by address and port', () => {
    expect(addressOf('10.0.3.7:52114')).toBe('10.0.3.7')
    expect(addressOf('::ffff:127.0.0.2:6000')).toBe('::ffff:127.0.0.2')
    expect(addressOf('unknown')).toBe('unknown')
  })
})
