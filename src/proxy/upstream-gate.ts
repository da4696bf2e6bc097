/**
 * The per-target cap on upstream sessions. A client past the cap waits its turn in a FIFO queue
 * (its session starts when another one ends) and is refused with SQLSTATE 53300 when it has
 * waited longer than the configured time, so a crowd of clients can never use up the server's
 * connection slots.
 */
import {formatDuration} from '../config/units.js'
import {UpstreamError} from './upstream.js'

export interface UpstreamGateOptions {
  /** Upstream sessions open (or being opened) at once. */
  max: number
  /** How long a client may wait for a free session before it is refused. */
  queueTimeoutMs: number
}

interface Waiter {
  grant: (release: () => void) => void
  refuse: (error: Error) => void
  timer: NodeJS.Timeout
}

/**
 * What a session waits on before it dials the server: the target's budget, or the budget behind a
 * further cap (the gateway's per person, for its remote MCP sessions).
 */
export interface SessionGate {
  /** Resolves with the function that gives the slot back; rejects with an UpstreamError naming the cap. */
  acquire(signal?: AbortSignal): Promise<() => void>
  readonly inUse: number
  readonly queued: number
}

export class UpstreamGate implements SessionGate {
  private active = 0
  private readonly waiting: Waiter[] = []

  constructor(private readonly opts: UpstreamGateOptions) {}

  get inUse(): number {
    return this.active
  }

  get queued(): number {
    return this.waiting.length
  }

  /**
   * Resolves with the function that gives the session slot back, once one is free. `signal`
   * withdraws a waiting request (the client went away).
   */
  acquire(signal?: AbortSignal): Promise<() => void> {
    if (this.active < this.opts.max && this.waiting.length === 0) {
      this.active++
      return Promise.resolve(this.releaser())
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        grant: resolve,
        refuse: reject,
        timer: setTimeout(() => {
          this.remove(waiter)
          reject(
            new UpstreamError(
              `too many upstream sessions: the tunnel's cap of ${this.opts.max} (tunnel.maxUpstreamSessions) was reached and no session came free within ${formatDuration(this.opts.queueTimeoutMs)} (tunnel.upstreamQueueTimeout)`,
              '53300',
            ),
          )
        }, this.opts.queueTimeoutMs),
      }
      this.waiting.push(waiter)
      signal?.addEventListener(
        'abort',
        () => {
          if (!this.remove(waiter)) return
          clearTimeout(waiter.timer)
          reject(new UpstreamError('the client left while waiting for an upstream session', '08006'))
        },
        {once: true},
      )
    })
  }

  private remove(w: Waiter): boolean {
    const i = this.waiting.indexOf(w)
    if (i < 0) return false
    this.waiting.splice(i, 1)
    return true
  }

  private releaser(): () => void {
    let released = false
    return () => {
      if (released) return
      released = true
      const next = this.waiting.shift()
      if (next) {
        clearTimeout(next.timer)
        next.grant(this.releaser())
      } else {
        this.active--
      }
    }
  }
}
