/**
 * A connection before its session starts: the client's startup packet, its proof that it holds
 * the tunnel's secret, then the upstream login and the check of the settings the analysis depends
 * on. Everything here runs before the client is trusted, so it is bounded the way PostgreSQL bounds
 * it: a 10,000-byte startup packet, small authentication messages, and one deadline
 * (tunnel.authTimeout) for all of it, the upstream dial included.
 */
import {timingSafeEqual} from 'node:crypto'
import tls from 'node:tls'
import type {AssumedSetting} from '../policy/assumed-settings.js'
import {formatDuration} from '../config/units.js'
import {encodeAuthCleartext, encodeAuthSasl, encodeAuthSaslContinue, encodeAuthSaslFinal, encodeNegotiateProtocolVersion} from '../wire/backend.js'
import {codeName, Frontend} from '../wire/codes.js'
import {ProtocolError, type Frame, type Framer} from '../wire/framer.js'
import {decodeSaslInitial, decodeStartup} from '../wire/frontend.js'
import {ScramError, ScramServer} from '../wire/scram.js'
import type {ConnectionCore, TokenAuth} from './connection.js'
import type {PgNoticeFields} from '../wire/fields.js'
import {DEFAULT_TUNNEL_LIMITS, MAX_AUTH_MESSAGE_SIZE} from './limits.js'
import {assumedSettingsOf, checkPreflight, checkReported, preflightQuery, type PreflightRow} from './session-settings.js'
import {connectUpstream, UpstreamError, type UpstreamSession} from './upstream.js'


export class ClientStartup {
  private step: 'startup' | 'auth' | 'signing-in' | 'connecting' | 'done' = 'startup'
  private scram: ScramServer | undefined
  private params: Record<string, string> = {}
  private timer: NodeJS.Timeout | undefined
  private deadline = 0
  private readonly timeoutMs: number
  /** Aborts the login's waits when the connection closes; dropped once the session has begun, as is the SCRAM exchange. */
  private abort: AbortController | undefined = new AbortController()
  /** The connection closed (`stop`). */
  private stopped = false
  /** Gives back this session's upstream slot (tunnel.maxUpstreamSessions). */
  private release: (() => void) | undefined
  /** Until the token has arrived, the shorter deadline it must arrive by (the gateway's server.signInTimeout). */
  private signInLimit: {at: number; ms: number; setting: string} | undefined
  /** The encryption requests answered 'N' so far (`encryptionRequest`). */
  private readonly answered = {ssl: false, gssenc: false}

  constructor(
    private readonly c: ConnectionCore,
    private readonly framer: Framer,
    private readonly onReady: (up: UpstreamSession, startupParams: Record<string, string>) => void,
  ) {
    this.timeoutMs = c.env.authTimeoutMs ?? DEFAULT_TUNNEL_LIMITS.authTimeoutMs
    const signIn = c.env.signInDeadline
    if (signIn) {
      this.signInLimit = signIn
      this.arm(Math.max(0, signIn.at - Date.now()))
    } else this.arm(this.timeoutMs)
  }

  /** The client was asked for a password and has not sent it yet. */
  get readsPassword(): boolean {
    return this.step === 'auth'
  }

  /** The connection starts ready (tests, the benchmark): there is nothing to time out. */
  skip(): void {
    this.step = 'done'
    this.disarm()
  }

  /**
   * The upstream slot, taken away from `stop`: the connection gives it back itself once the server
   * has closed the session (a session the client left still runs what it was sent until then).
   */
  takeSlot(): (() => void) | undefined {
    const release = this.release
    this.release = undefined
    return release
  }

  /** The connection closed: stop waiting, give back the upstream slot (unless taken). */
  stop(): void {
    this.disarm()
    this.stopped = true
    this.abort?.abort()
    this.release?.()
    this.release = undefined
  }

  private arm(ms: number): void {
    this.deadline = Date.now() + ms
    this.timer = setTimeout(() => this.timedOut(), ms)
  }

  private disarm(): void {
    if (this.timer) clearTimeout(this.timer)
    this.timer = undefined
  }

  private timedOut(): void {
    this.timer = undefined
    if (this.step === 'done') return
    const signIn = this.signInLimit
    if (signIn) {
      this.c.env.log('warn', `connection ${this.c.id}: closed a client that did not send its startup packet and token within ${formatDuration(signIn.ms)} (${signIn.setting})`)
      this.c.refuse({
        severity: 'FATAL',
        code: '08006',
        message: `dbgate: sign-in timed out: the TLS handshake, startup packet and token must arrive within ${formatDuration(signIn.ms)} of connecting (${signIn.setting})`,
      })
      return
    }
    this.c.env.log('warn', `connection ${this.c.id}: closed a client that did not finish startup and authentication within ${formatDuration(this.timeoutMs)}`)
    this.c.refuse({
      severity: 'FATAL',
      code: '08006',
      message: `dbgate: authentication timed out: startup, login and the upstream connection must finish within ${formatDuration(this.timeoutMs)} (tunnel.authTimeout)`,
    })
  }

  onFrame(frame: Frame): void {
    switch (this.step) {
      case 'startup':
        this.onStartupPacket(frame.body)
        return
      case 'auth':
        this.onAuthMessage(frame)
        return
      case 'signing-in':
      case 'connecting':
        throw new ProtocolError('unexpected message before authentication completed')
      case 'done':
        return
    }
  }

  private onStartupPacket(body: Buffer): void {
    const c = this.c
    const packet = decodeStartup(body)
    if (packet.kind === 'ssl' || packet.kind === 'gssenc') {
      const refused = this.encryptionRequest(packet.kind)
      if (refused) {
        c.env.log('warn', `connection ${c.id}: protocol error: ${refused.message.replace(/^dbgate: /, '')}`)
        c.refuse(refused)
        return
      }
      // Loopback clients need no encryption; 'N' tells them to carry on in the clear.
      c.client.write(Buffer.from('N'))
      return
    }
    if (packet.kind === 'cancel') {
      c.env.cancelByKey(packet.processId, packet.secretKey)
      this.step = 'done'
      this.disarm()
      c.client.end()
      c.close('cancel request')
      return
    }
    const over = c.env.overCapacity
    if (over) {
      c.refuse({
        severity: 'FATAL',
        code: '53300',
        message: `dbgate: too many client connections: this tunnel's cap of ${over.max} (tunnel.maxClientConnections) is reached`,
        hint: 'Close idle sessions of this tunnel, or raise tunnel.maxClientConnections in dbgate.yaml.',
      })
      return
    }
    const params = packet.params
    const refused = this.checkStartup(params)
    if (refused) {
      c.refuse(refused)
      return
    }
    this.params = params
    // As PostgreSQL answers: a newer minor version, or any `_pq_.` option (none is taken; they are
    // not passed upstream), is answered with the version spoken, 3.0, and the options left out, so
    // the client does not go on believing one of them in force.
    const unsupported = Object.keys(params).filter((k) => k.startsWith('_pq_.'))
    if (packet.minor > 0 || unsupported.length > 0) c.toClient.push(encodeNegotiateProtocolVersion(3, 0, unsupported))
    this.framer.endStartup()
    this.framer.setLimit(MAX_AUTH_MESSAGE_SIZE, 'the limit for messages before authentication')
    this.step = 'auth'
    c.toClient.push(c.env.auth.method === 'scram-sha-256' ? encodeAuthSasl(['SCRAM-SHA-256']) : encodeAuthCleartext())
  }

  /**
   * Whether an SSLRequest or GSSENCRequest may be answered 'N'. libpq sends at most one of each
   * before its startup packet, and PostgreSQL refuses a second (and both once TLS is in place).
   * Answered every time, a client that sends them without reading the answers made the tunnel queue
   * one write per 8 bytes it sent, before any secret or token: 64 MiB of SSLRequests grew the
   * process by 600 MiB, and one connection could exhaust the memory of a tunnel or a gateway
   * worker and end every session on it.
   */
  private encryptionRequest(kind: 'ssl' | 'gssenc'): PgNoticeFields | undefined {
    const name = kind === 'ssl' ? 'SSLRequest' : 'GSSENCRequest'
    // The gateway's clients reach this over TLS (client-tls.ts): encryption is settled already.
    if (this.c.client instanceof tls.TLSSocket) {
      return {
        severity: 'FATAL',
        code: '08P01',
        message: `dbgate: protocol error: ${name} inside TLS; the encryption of this connection is already settled`,
        hint: 'Send the startup packet once the TLS handshake is done, as libpq does.',
      }
    }
    if (this.answered[kind]) {
      return {
        severity: 'FATAL',
        code: '08P01',
        message: `dbgate: protocol error: more than one ${name} before the startup packet`,
        hint: "After the answer 'N', send the startup packet (or the other request, once), as libpq does.",
      }
    }
    this.answered[kind] = true
    return undefined
  }

  /**
   * A signed-in token decides the target (by the database name), the hooks and the upstream gate of
   * this connection; the startup parameters are then judged by that target's policy.
   */
  private signIn(auth: TokenAuth, body: Buffer): void {
    const c = this.c
    // The token travels as a cleartext password: never accept one outside TLS, whatever the listener.
    if (!(c.client instanceof tls.TLSSocket) || !c.client.encrypted) {
      c.refuse({severity: 'FATAL', code: '28000', message: 'dbgate: sign-in with a token is accepted over TLS only', hint: 'Connect with sslmode=verify-full.'})
      return
    }
    const nul = body.indexOf(0)
    if (nul !== body.length - 1) throw new ProtocolError('malformed password message')
    const password = body.toString('utf8', 0, nul)
    if (this.signInLimit) {
      // The token is in: verifying it and the upstream login get tunnel.authTimeout from here.
      this.signInLimit = undefined
      this.disarm()
      this.arm(this.timeoutMs)
    }
    this.step = 'signing-in'
    c.client.pause()
    const request = {user: this.params.user ?? '', database: this.params.database ?? this.params.user ?? '', password, clientAddress: c.clientAddress, startupParams: this.params}
    auth.authenticate(request).then(
      (result) => {
        if (this.stopped) return
        if (!result.ok) {
          c.refuse(result.error)
          return
        }
        c.settle(result.grant)
        let refused: PgNoticeFields | undefined
        try {
          refused = c.env.hooks.startup?.(this.params)
        } catch (error) {
          // A policy that cannot judge the startup parameters lets nothing in.
          c.fail(error)
          return
        }
        if (refused) {
          c.refuse(refused)
          return
        }
        c.client.resume()
        this.startUpstream()
      },
      (error: unknown) => {
        if (this.stopped) return
        c.env.log('error', `connection ${c.id}: sign-in failed: ${(error as Error).message}`)
        c.refuse({severity: 'FATAL', code: 'XX000', message: 'dbgate: sign-in failed on the gateway; try again, and report it if it repeats'})
      },
    )
  }

  private checkStartup(params: Record<string, string>): PgNoticeFields | undefined {
    const target = this.c.env.target
    if ('replication' in params && !/^(false|off|no|0)$/i.test(params.replication ?? '')) {
      return {severity: 'FATAL', code: '42501', message: 'dbgate: replication connections are not allowed through the tunnel'}
    }
    if ((params.options ?? '').trim() !== '') {
      return {
        severity: 'FATAL',
        code: '42501',
        message: 'dbgate: the startup parameter "options" is not allowed through the tunnel',
        hint: 'It sets server options before any statement can be checked. Use SET after connecting instead (unset PGOPTIONS).',
      }
    }
    // With a token the database name picks the target, after sign-in; its policy judges the rest then.
    if (this.c.env.auth.method === 'token') return undefined
    const database = params.database
    if (database && database !== target.database) {
      return {
        severity: 'FATAL',
        code: '3D000',
        message: `dbgate: this tunnel serves database "${target.database}", not "${database}"`,
        hint: `Connect to database "${target.database}", or open a tunnel to a target for "${database}".`,
      }
    }
    return this.c.env.hooks.startup?.(params)
  }

  private onAuthMessage(frame: Frame): void {
    if (frame.code !== Frontend.Password) throw new ProtocolError(`expected a password message during authentication, got ${codeName(frame.code)}`)
    const c = this.c
    const auth = c.env.auth
    if (auth.method === 'token') return this.signIn(auth, frame.body)
    if (auth.method === 'cleartext') {
      const given = frame.body.subarray(0, Math.max(0, frame.body.length - 1))
      const want = Buffer.from(auth.secret)
      if (given.length !== want.length || !timingSafeEqual(given, want)) return this.refuseAuth()
      return this.startUpstream()
    }
    try {
      if (!this.scram) {
        const initial = decodeSaslInitial(frame.body)
        if (initial.mechanism !== 'SCRAM-SHA-256') throw new ScramError(`unsupported SASL mechanism ${initial.mechanism}`)
        this.scram = new ScramServer(auth.verifier)
        c.toClient.push(encodeAuthSaslContinue(this.scram.start(initial.data.toString('utf8'))))
        return
      }
      const final = this.scram.finish(frame.body.toString('utf8'))
      c.toClient.push(encodeAuthSaslFinal(final))
    } catch (error) {
      if (error instanceof ScramError && error.message !== 'wrong password') {
        c.refuse({severity: 'FATAL', code: '08P01', message: `dbgate: ${error.message}`})
        return
      }
      return this.refuseAuth()
    }
    this.startUpstream()
  }

  private refuseAuth(): void {
    this.c.env.log('warn', `connection ${this.c.id}: a client presented a wrong tunnel secret`)
    this.c.refuse({
      severity: 'FATAL',
      code: '28P01',
      message: "dbgate: password authentication failed: the password must be this tunnel's secret",
      hint: 'Use the connection URI printed by `dbgate connect`, or run your client through `dbgate connect <target> -- <command>`.',
    })
  }

  private startUpstream(): void {
    const c = this.c
    this.step = 'connecting'
    c.client.pause()
    // The client has proven it holds the secret: from now on its messages may be as large as any.
    this.framer.setLimit(c.env.maxMessageSize, 'tunnel.maxMessageSize')
    const params: Record<string, string> = {}
    for (const [k, v] of Object.entries(this.params)) {
      if (k === 'user' || k === 'database' || k === 'options' || k === 'replication' || k.startsWith('_pq_.')) continue
      params[k] = v
    }
    params.application_name = c.env.applicationName(this.params.application_name)
    this.connect(params).catch((error: unknown) => {
      const e = error instanceof UpstreamError ? error : new UpstreamError(String(error), '08006')
      if (this.stopped) return
      const where = c.env.targetName ? `target "${c.env.targetName}": ` : ''
      c.env.log('error', `connection ${c.id}: ${where}${e.message}`)
      c.refuse({
        severity: 'FATAL',
        code: e.sqlstate,
        message: `dbgate: ${where}${shownRefusal(e)}`,
        hint:
          e.sqlstate === '53300'
            ? 'Wait for other sessions of this tunnel to end, or raise the cap in dbgate.yaml.'
            : e.upstream?.where
              ? "The tunnel's log has the server's message; whoever runs the database can fix or disable the login event trigger (ALTER EVENT TRIGGER … DISABLE)."
              : 'The tunnel is up, but it could not open a session on the upstream database.',
      })
    })
  }

  private async connect(params: Record<string, string>): Promise<void> {
    const c = this.c
    const gate = c.env.upstreamGate
    if (gate) {
      // The queue has its own deadline (tunnel.upstreamQueueTimeout); the authentication clock stops meanwhile.
      const left = Math.max(0, this.deadline - Date.now())
      this.disarm()
      this.release = await gate.acquire(this.abort!.signal)
      if (this.stopped) {
        this.release()
        this.release = undefined
        return
      }
      this.arm(left)
    }
    const assumed = assumedSettingsOf(c.env)
    const up = await connectUpstream(c.env.target, params, {preflight: assumed.length > 0 ? preflightQuery(assumed) : undefined, signal: this.abort!.signal, ownReadBuffer: true})
    if (this.stopped) {
      up.socket.destroy()
      return
    }
    const problem = this.checkSettings(up, assumed)
    if (problem) {
      up.socket.destroy()
      c.env.log('warn', `connection ${c.id}: refused the session: ${problem.message}`)
      c.refuse(problem)
      return
    }
    this.step = 'done'
    this.disarm()
    // Nothing waits any more (the dial and the gate removed their listeners): an idle session keeps neither.
    this.abort = undefined
    this.scram = undefined
    this.onReady(up, this.params)
  }

  private checkSettings(up: UpstreamSession, assumed: readonly AssumedSetting[]): PgNoticeFields | undefined {
    if (assumed.length === 0) return undefined
    const rows = (up.preflight ?? []) as unknown as PreflightRow[]
    const preflight = checkPreflight(rows, assumed, {database: this.c.env.target.database, user: this.c.env.target.user})
    if (preflight) return preflight
    for (const [name, value] of up.parameters) {
      const reported = checkReported(name, value, assumed)
      if (reported) return reported
    }
    return undefined
  }
}

/**
 * The upstream's refusal as the client is shown it. One raised inside code the server ran at login
 * (a login event trigger: the error has a context) may print any value that code read, and the
 * client has proven nothing but the tunnel's secret: only its code is shown, the operator's log
 * keeps the message.
 */
function shownRefusal(e: UpstreamError): string {
  if (!e.upstream?.where) return e.message
  return `upstream refused the connection with SQLSTATE ${e.upstream.code}, raised by code the server ran at login (a login event trigger); its message is not shown, since that code may print any value it read`
}
