import {describe, expect, it} from 'vitest'
import {isLoopbackHost, isLoopbackHttp} from '../../src/util/loopback.js'

describe('the one loopback check', () => {
  it('accepts this machine by name or loopback address, as a host or as a URL writes it', () => {
    for (const host of ['localhost', 'LOCALHOST', '127.0.0.1', '127.1.2.3', '::1', '[::1]']) expect(isLoopbackHost(host), host).toBe(true)
  })

  it('refuses every other host, including names that only look local', () => {
    for (const host of ['0.0.0.0', '::', '10.0.0.1', '128.0.0.1', '127.0.0.1.example.com', 'localhost.example.com', 'example.com', '127.0.0', '127.0.0.1000', '127.0.0.999', '127.256.0.1', '', '[::2]']) {
      expect(isLoopbackHost(host), host).toBe(false)
    }
  })

  it('tolerates plain http only to a loopback address, not to the name localhost', () => {
    expect(isLoopbackHttp('http://127.0.0.1:9000/realm')).toBe(true)
    for (const url of ['http://localhost:9000', 'http://LOCALHOST', 'http://localhost./x']) expect(isLoopbackHttp(url), url).toBe(false)
    expect(isLoopbackHttp('http://[::1]:8080')).toBe(true)
    expect(isLoopbackHttp('http://login.example.com')).toBe(false)
    expect(isLoopbackHttp('https://127.0.0.1')).toBe(false)
  })
})
