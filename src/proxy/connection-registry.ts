/**
 * The client connections of one listener (the local tunnel or the gateway): the cancel keys handed
 * to them, and how they are all ended when the listener closes.
 */
import {randomInt} from 'node:crypto'
import type {ClientConnection} from './connection.js'

/** Cancel keys carry the issuing worker in their low bits, so up to this many workers. */
export const MAX_WORKER_SLOTS = 256

export interface ConnectionRegistryOptions {
  /**
   * One of several worker processes on one port (`dbgate gateway --workers`): a CancelRequest may
   * reach any of them, so each key's process id names the worker that issued it (`processId %
   * MAX_WORKER_SLOTS === slot`), and a key of another of the `slots` workers is handed to `forward`.
   * A key naming no worker of this process was issued by another replica (or made up).
   */
  elsewhere?: {slot: number; slots: number; forward: (processId: number, secretKey: number, fromPeer: boolean) => void}
}

export class ConnectionRegistry {
  readonly connections = new Set<ClientConnection>()
  private readonly cancelKeys = new Map<number, {secretKey: number; conn: ClientConnection}>()

  constructor(
    private readonly log: (level: 'info' | 'warn' | 'error', message: string) => void,
    private readonly options: ConnectionRegistryOptions = {},
  ) {}

  /** The worker a cancel key belongs to. */
  static slotOf(processId: number): number {
    return processId % MAX_WORKER_SLOTS
  }

  add(conn: ClientConnection): void {
    this.connections.add(conn)
    conn.onClose(() => this.connections.delete(conn))
  }

  /** A random key the client can cancel this connection's statement with (BackendKeyData). */
  issueCancelKey(conn: ClientConnection): {processId: number; secretKey: number} {
    let processId: number
    const slot = this.options.elsewhere?.slot
    if (slot === undefined) {
      do processId = randomInt(1, 2 ** 31 - 1)
      while (this.cancelKeys.has(processId))
    } else {
      do processId = randomInt(1, 2 ** 31 / MAX_WORKER_SLOTS) * MAX_WORKER_SLOTS + slot
      while (this.cancelKeys.has(processId))
    }
    const secretKey = randomInt(-(2 ** 31), 2 ** 31 - 1)
    this.cancelKeys.set(processId, {secretKey, conn})
    return {processId, secretKey}
  }

  releaseCancelKey(processId: number): void {
    this.cancelKeys.delete(processId)
  }

  /** The connection a cancel key of this process was issued to, when the whole key matches. */
  connectionByKey(processId: number, secretKey: number): ClientConnection | undefined {
    const entry = this.cancelKeys.get(processId)
    return entry && entry.secretKey === secretKey ? entry.conn : undefined
  }

  /**
   * Cancels the statement of the session the key belongs to. What happened is for the caller to log:
   * anyone may send a CancelRequest, so a listener open to strangers counts those lines.
   */
  cancelByKey(processId: number, secretKey: number, fromPeer = false): 'cancelled' | 'unknown-key' | {handedTo: number} {
    const elsewhere = this.options.elsewhere
    const slot = ConnectionRegistry.slotOf(processId)
    if (elsewhere && slot !== elsewhere.slot && slot < elsewhere.slots) {
      elsewhere.forward(processId, secretKey, fromPeer)
      return {handedTo: slot}
    }
    const entry = this.cancelKeys.get(processId)
    if (!entry || entry.secretKey !== secretKey) return 'unknown-key'
    void entry.conn.cancel()
    return 'cancelled'
  }

  /**
   * Asks every connection to end once its statement in flight finishes, waits up to `graceMs`,
   * then cancels what still runs and closes them all. With `endServerSessions` (the gateway, whose
   * sessions belong to people whose access ends with the drain) what still runs has its database
   * session ended instead: a cancel would leave the statements pipelined behind it to run.
   */
  async drain(graceMs: number, message: string | undefined, closeReason: string, endServerSessions = false): Promise<void> {
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
    await Promise.all(busy.map((c) => (endServerSessions ? c.endPastGrace() : c.cancel())))
    await Promise.race([done, new Promise((r) => setTimeout(r, 2000))])
    for (const c of all) c.close(closeReason)
  }
}
