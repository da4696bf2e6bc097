import net from 'node:net'
import {describe, expect, it} from 'vitest'
import {PeerCancels} from '../../src/gateway/peer-cancels.js'

/** A peer that counts the cancel requests passed on to it. */
async function countingPeer(): Promise<{port: number; count(): number; close(): Promise<void>}> {
  let n = 0
  const server = net.createServer((s) => {
    s.on('data', (d: Buffer) => (n += d.length / 16))
    s.on('error', () => {})
  })
  await new Promise<void>((resolve) => server.listen({host: '127.0.0.1', port: 0}, resolve))
  return {port: (server.address() as net.AddressInfo).port, count: () => n, close: () => new Promise((resolve) => server.close(() => resolve()))}
}

describe('passing cancel requests on to peer replicas', () => {
  it('passes at most a burst and then the rate on, and says when it drops one', async () => {
    const peer = await countingPeer()
    let now = 0
    const reports: string[] = []
    const peers = new PeerCancels({peers: [{host: '127.0.0.1', port: peer.port}], report: (_level, _kind, m) => reports.push(m), perSecond: 2, burst: 3, now: () => now})
    for (let i = 0; i < 5; i++) await peers.forward(i + 1, 7)
    expect(reports).toEqual([expect.stringContaining('more than 2 a second (a burst of 3) arrived'), expect.stringContaining('more than 2 a second')])
    now += 1000
    for (let i = 0; i < 3; i++) await peers.forward(i + 10, 7)
    expect(reports).toHaveLength(3)
    // 3 of the burst, then 2 after a second: each reaches the peer as a connection of its own.
    await new Promise<void>((resolve) => {
      const check = () => (peer.count() >= 5 ? resolve() : setTimeout(check, 20))
      check()
    })
    expect(peer.count()).toBe(5)
    await peer.close()
  })

  it('names the peer it could not resolve or reach, and still reaches the others', async () => {
    const peer = await countingPeer()
    const closed = await countingPeer()
    await closed.close()
    const reports: string[] = []
    const peers = new PeerCancels({
      peers: [{host: 'gw-gone.invalid', port: 6432}, {host: '127.0.0.1', port: closed.port}, {host: '127.0.0.1', port: peer.port}],
      report: (_level, _kind, m) => reports.push(m),
      resolve: async (host) => {
        if (host.endsWith('.invalid')) throw new Error(`getaddrinfo ENOTFOUND ${host}`)
        return [host]
      },
    })
    await peers.forward(42, 43)
    expect(reports.sort()).toEqual([
      `could not pass a cancel request on to the peer 127.0.0.1:${closed.port} (server.peers: 127.0.0.1:${closed.port}): connect ECONNREFUSED 127.0.0.1:${closed.port}`,
      'could not pass a cancel request on to the peer gw-gone.invalid:6432: getaddrinfo ENOTFOUND gw-gone.invalid',
    ])
    await new Promise<void>((resolve) => {
      const check = () => (peer.count() >= 1 ? resolve() : setTimeout(check, 20))
      check()
    })
    expect(peer.count()).toBe(1)
    await peer.close()
  })
})
