/** What a client received, byte for byte, through a relay in front of the tunnel: for the leak corpora. */
import net from 'node:net'
import pg from 'pg'

export interface Seen {
  bytes: Buffer[]
  strings: string[]
}

/**
 * A loopback relay in front of the tunnel that records every byte sent to the client, so what
 * is checked is exactly what any client would receive, whatever driver reads it.
 */
export async function recordingRelay(tunnelPort: number): Promise<{port: number; seen: Seen[]; close(): Promise<void>}> {
  const seen: Seen[] = []
  const sockets = new Set<net.Socket>()
  const server = net.createServer((client) => {
    const record: Seen = {bytes: [], strings: []}
    seen.push(record)
    const upstream = net.connect(tunnelPort, '127.0.0.1')
    sockets.add(client).add(upstream)
    client.pipe(upstream)
    upstream.on('data', (b: Buffer) => {
      record.bytes.push(Buffer.from(b))
      client.write(b)
    })
    upstream.on('end', () => client.end())
    client.on('error', () => upstream.destroy())
    upstream.on('error', () => client.destroy())
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as net.AddressInfo).port,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy()
        server.close(() => resolve())
      }),
  }
}

export function captured(client: pg.Client, seen: Seen): pg.Client {
  client.on('notification', (n) => seen.strings.push(JSON.stringify(n)))
  client.on('notice', (n) => seen.strings.push(JSON.stringify(n)))
  client.on('error', () => {})
  return client
}

export function all(seen: Seen): Buffer {
  return Buffer.concat([...seen.bytes, Buffer.from(seen.strings.join('\n'), 'utf8')])
}

/**
 * A node-postgres client of the tunnel at `tunnelUrl`, through `relay`: what it receives, bytes
 * already received and any later ones, lands in `seen.bytes`, its notices and notifications in
 * `seen.strings`.
 */
export async function relayedClient(tunnelUrl: string, relay: {port: number; seen: Seen[]}, seen: Seen, extra: Partial<pg.ClientConfig> = {}): Promise<pg.Client> {
  const url = new URL(tunnelUrl)
  url.port = String(relay.port)
  const c = captured(new pg.Client({connectionString: url.toString(), ...extra}), seen)
  const index = relay.seen.length
  await c.connect()
  seen.bytes = relay.seen[index]!.bytes
  return c
}
