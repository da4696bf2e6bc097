/**
 * The client connections of one listener (the local tunnel or the gateway): the cancel keys handed
 * to them, and how they are all ended when the listener closes.
 */
import {randomInt} from 'node:crypto'
import type {ClientConnection} from './connection.js'

export class ConnectionRegistry {
  readonly connections = new Set<ClientConnection>()
  private readonly cancelKeys = new Map<number, {secretKey: number; conn: ClientConnection}>()

  constructor(private readonly log: (level: 'info' | 'warn' | 'error', message: string) => void) {}

  add(conn: ClientConnection): void {
    this.connections.add(conn)
    conn.onClose(() => this.connections.delete(conn))
  }

  /** A random key the client can cancel this connection's statement with (BackendKeyData). */
  issueCancelKey(conn: ClientConnection): {processId: number; secretKey: number} {
    let processId: number
    do processId = randomInt(1, 2 ** 31 - 1)
    while (this.cancelKeys.has(processId))
    const secretKey = randomInt(-(2 ** 31), 2 ** 31 - 1)
    this.cancelKeys.set(processId, {secretKey, conn})
    return {processId, secretKey}
  }

  releaseCancelKey(processId: number): void {
    this.cancelKeys.delete(processId)
  }

  cancelByKey(processId: number, secretKey: number): void {
    const entry = this.cancelKeys.get(processId)
    if (!entry || entry.secretKey !== secretKey) {
      this.log('warn', 'ignored a cancel request with an unknown key')
      return
    }
    void entry.conn.cancel()
  }

  /**
   * Asks every connection to end once its statement in flight finishes, waits up to `graceMs`,
   * then cancels what still runs and closes them all.
   */
  async drain(graceMs: number, message: string | undefined, closeReason: string): Promise<void> {
    const all = [...this.connections]
    const done = Promise.all(all.map((c) => new Promise<void>((resolve) => c.onClose(resolve))))
    for (const c of all) c.shutdown(message)
    let timer: NodeJS.Timeout | undefined
    const timedOut = await Promise.race([
      done.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), graceMs)
      }),
    ])
    clearTimeout(timer)
    if (!timedOut) return
    const busy = all.filter((c) => !c.closed)
    this.log('warn', `cancelling ${busy.length} statement(s) still running after ${graceMs} ms`)
    await Promise.all(busy.map((c) => c.cancel()))
    await Promise.race([done, new Promise((r) => setTimeout(r, 2000))])
    for (const c of all) c.close(closeReason)
  }
}
