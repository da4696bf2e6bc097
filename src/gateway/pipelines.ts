/**
 * The gateway's pipelines, one per (target, identity). What a pipeline does depends on who connects
 * (policy groups, masking's unmask groups, the recording's identity, the approval requester), so it
 * is built per identity with the same `buildTunnelHooks` that `dbgate connect` uses, shared by that
 * identity's concurrent sessions, and disposed a short while after its last session ends.
 *
 * What one pipeline costs while it lives: one catalog connection to the target (masking and the
 * function catalog read through it; it counts against the database's connections, not against the
 * target's maxUpstreamSessions), masking's catalog snapshot in memory, one recorder and one shipper
 * over the gateway's spool (a timer every 5 s), and the approval gate's bucket polls while one of
 * its statements is held. So N people active on one target cost N catalog connections on top of
 * their sessions; `server.pipelineIdle` bounds how long an idle one lingers.
 *
 * The key is the subject and its sorted groups: a new token for the same person and groups reuses
 * the pipeline, which proved the same person with the same groups. Each session's recording still
 * names the token that session signed in with (gateway.ts `signedInAs`); what the pipeline itself
 * files (an approval request's requester) names the token that built it.
 */
import type {Identity} from '../identity/types.js'
import type {ProxyHooks} from '../proxy/seam.js'

export interface PipelineLease {
  hooks: ProxyHooks
  /** Gives the session back; the pipeline is disposed `idleMs` after its last session. */
  release(): void
  /** Whether a reload has replaced the pipeline (built from the configuration before it). */
  readonly retired: boolean
}

interface Entry {
  hooks: Promise<ProxyHooks>
  sessions: number
  idleTimer?: NodeJS.Timeout
  /** Replaced by a reload: no new session gets it, and it is disposed when its last one ends. */
  retired?: boolean
}

export class PipelineCache {
  private readonly entries = new Map<string, Entry>()
  /** Retired pipelines that still serve sessions. */
  private readonly retired = new Set<Entry>()
  private closed = false

  constructor(
    private readonly build: (target: string, identity: Identity) => Promise<ProxyHooks>,
    private readonly idleMs: number,
    private readonly log: (level: 'info' | 'warn' | 'error', message: string) => void,
  ) {}

  static keyOf(target: string, identity: Identity): string {
    return JSON.stringify([target, identity.issuer, identity.subject, [...identity.groups].sort()])
  }

  /** Pipelines alive (in use, or idle and not yet disposed). */
  get size(): number {
    return this.entries.size + this.retired.size
  }

  async acquire(target: string, identity: Identity): Promise<PipelineLease> {
    if (this.closed) throw new Error('the gateway is shutting down')
    const key = PipelineCache.keyOf(target, identity)
    let entry = this.entries.get(key)
    if (!entry) {
      const built = this.build(target, identity)
      entry = {hooks: built, sessions: 0}
      this.entries.set(key, entry)
      // A pipeline that failed to build is forgotten, so the next sign-in tries again.
      built.catch(() => {
        if (this.entries.get(key) === entry) this.entries.delete(key)
      })
    }
    entry.sessions++
    clearTimeout(entry.idleTimer)
    entry.idleTimer = undefined
    let hooks: ProxyHooks
    try {
      hooks = await entry.hooks
    } catch (error) {
      entry.sessions--
      throw error
    }
    let released = false
    const e = entry
    return {
      hooks,
      get retired() {
        return e.retired === true
      },
      release: () => {
        if (released) return
        released = true
        e.sessions--
        if (e.sessions > 0 || this.closed) return
        if (e.retired) {
          this.retired.delete(e)
          void this.dispose(e)
          return
        }
        e.idleTimer = setTimeout(() => {
          if (e.sessions > 0 || this.entries.get(key) !== e) return
          this.entries.delete(key)
          void this.dispose(e)
        }, this.idleMs)
        e.idleTimer.unref()
      },
    }
  }

  /** Disposals under way (idle or retired pipelines), which `close` waits for. */
  private readonly disposing = new Set<Promise<void>>()

  private dispose(entry: Entry): Promise<void> {
    const p = this.disposeNow(entry).finally(() => this.disposing.delete(p))
    this.disposing.add(p)
    return p
  }

  private async disposeNow(entry: Entry): Promise<void> {
    // A pipeline that never finished building has nothing to dispose; its failure was reported at sign-in.
    const hooks = await entry.hooks.catch(() => undefined)
    try {
      await hooks?.dispose?.()
    } catch (error) {
      this.log('warn', `disposing a pipeline: ${(error as Error).message}`)
    }
  }

  /**
   * After a reload (SIGHUP): new sessions get new pipelines built from the reloaded policy. The
   * sessions open now keep theirs until they end (the gateway ends those whose target's policy or
   * settings the reload changed, after their statement in flight).
   */
  retireAll(): void {
    for (const [key, e] of this.entries) {
      this.entries.delete(key)
      clearTimeout(e.idleTimer)
      if (e.sessions > 0) {
        e.retired = true
        this.retired.add(e)
      } else void this.dispose(e)
    }
  }

  /** Disposes every pipeline (after their sessions have ended): recordings are closed and shipped. */
  async close(): Promise<void> {
    this.closed = true
    const all = [...this.entries.values(), ...this.retired]
    this.entries.clear()
    this.retired.clear()
    for (const e of all) clearTimeout(e.idleTimer)
    await Promise.all([...all.map((e) => this.dispose(e)), ...this.disposing])
  }
}
