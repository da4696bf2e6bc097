import * as client from 'openid-client'
import type {IdentityConfig} from './config.js'
import {IdpError, LoginAbortedError, LoginDeniedError, LoginExpiredError} from './errors.js'
import {defaultBrowserOpener, type BrowserOpener} from './browser.js'
import {discover, oauthErrorCode, toIdentityError} from './oidc.js'
import {openTokenStore, storeKey, type TokenStore} from './token-store.js'
import {toStoredTokens, verifyStored} from './tokens.js'
import type {Identity} from './types.js'
import {isLoopbackHttp} from '../util/loopback.js'
import {visible} from '../util/visible.js'

export interface DeviceCodePrompt {
  verificationUri: string
  /** The URI with the code filled in, where the IdP offers one (RFC 8628 §3.3.1). */
  verificationUriComplete?: string
  userCode: string
  expiresAt: Date
  /** Seconds between polls the IdP asked for. */
  interval: number
}

export interface DeviceLoginUI {
  /** Show the code and where to enter it. Called once, before any browser is opened. */
  showCode(prompt: DeviceCodePrompt): void | Promise<void>
  /** Told whether a browser was opened, so it can tell the user to open the URL themselves. */
  browser?(result: {url: string; opened: boolean}): void
  /** Polling starts: a good moment to start a spinner. */
  waiting?(): void
  /** Polling ended, either way; anything printed after this (warnings, errors) gets a clean line. */
  done?(): void
}

export interface DeviceLoginOptions {
  ui: DeviceLoginUI
  /** `false` disables the browser; default: the platform opener, where a display exists. */
  openBrowser?: BrowserOpener | false
  /** Ctrl-C: aborting it ends the login with LOGIN_ABORTED. */
  signal?: AbortSignal
  /** Overrides `config.scopes` for this login. */
  scopes?: string[]
  store?: TokenStore
  /** Told if tokens had to go to a file (see token-store). */
  warn?: (message: string) => void
  env?: NodeJS.ProcessEnv
}

export interface LoginResult {
  identity: Identity
  /** Where the tokens were stored (`the OS keychain` or `file <path>`), for the user. */
  storedIn: string
}

/**
 * OAuth 2.0 Device Authorization Grant (RFC 8628). Works with no browser on this machine: the user
 * opens the URL anywhere. openid-client runs the polling loop, honouring `interval` and `slow_down`.
 */
export async function deviceLogin(config: IdentityConfig, options: DeviceLoginOptions): Promise<LoginResult> {
  const oidc = await discover(config)
  const scope = (options.scopes ?? config.scopes).join(' ')

  let authorization: client.DeviceAuthorizationResponse
  try {
    authorization = await client.initiateDeviceAuthorization(oidc, {scope})
  } catch (error) {
    throw deviceStartError(error, config)
  }

  const verificationUri = webAddress(authorization.verification_uri)
  if (!verificationUri) {
    throw new IdpError(`The identity provider gave a verification address that is not a web page: ${visible(authorization.verification_uri)}.`, {
      nextStep: `dbgate opens and shows only https addresses (plain http only on this machine). Check identity.issuer (${config.issuer}) in dbgate.yaml: is this your identity provider?`,
    })
  }
  const prompt: DeviceCodePrompt = {
    verificationUri,
    // The address with the code filled in is a convenience: one that is no web page is left out.
    verificationUriComplete: authorization.verification_uri_complete === undefined ? undefined : webAddress(authorization.verification_uri_complete),
    userCode: visible(authorization.user_code),
    expiresAt: new Date(Date.now() + authorization.expires_in * 1000),
    interval: authorization.interval ?? 5,
  }
  await options.ui.showCode(prompt)

  const opener = options.openBrowser === false ? undefined : (options.openBrowser ?? defaultBrowserOpener(options.env))
  if (opener) {
    // The address without the code: an opener's arguments (xdg-open's, the browser's) are visible
    // to every local user, who could approve this login with their own account and have the person
    // work as them. The code stays on the person's terminal, to be typed or pasted.
    const url = prompt.verificationUri
    options.ui.browser?.({url, opened: await opener(url).catch(() => false)})
  }

  options.ui.waiting?.()
  let response: client.TokenEndpointResponse
  try {
    response = await poll(oidc, authorization, options.signal)
  } finally {
    options.ui.done?.()
  }

  const tokens = toStoredTokens(response, 'human')
  const {identity} = await verifyStored(config, tokens)
  const store = options.store ?? openTokenStore({warn: options.warn, env: options.env})
  const storedIn = await store.save(storeKey(config), tokens)
  return {identity, storedIn}
}

/**
 * `text` as a web address to show and open, or undefined when it is none. The IdP chooses it, and
 * the platform opener (xdg-open, open, rundll32) runs whatever it is given: a `file:` path to a
 * .desktop file or a .command script, another registered scheme. Only https is a sign-in page, or
 * plain http to this machine (as for the issuer). Given as the parser writes it back, where
 * control characters are percent-encoded and so cannot act on a terminal.
 */
export function webAddress(text: string): string | undefined {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    return undefined
  }
  return url.protocol === 'https:' || isLoopbackHttp(url) ? url.href : undefined
}

async function poll(
  oidc: client.Configuration,
  authorization: client.DeviceAuthorizationResponse,
  signal: AbortSignal | undefined,
): Promise<client.TokenEndpointResponse> {
  // openid-client only applies its expires_in timeout when no signal is given, so combine both. The
  // local deadline gets a little slack so the IdP's own expired_token answer normally wins.
  // Measured from when we got the code, so a little later than the IdP's own clock says.
  const expiresAt = Date.now() + authorization.expires_in * 1000
  const deadline = AbortSignal.timeout((authorization.expires_in + 10) * 1000)
  const pollingSignal = signal ? AbortSignal.any([signal, deadline]) : deadline
  // openid-client notices an abort only between its (up to 5 s) sleeps; Ctrl-C must answer at once.
  const aborted = new Promise<never>((_resolve, reject) => {
    const onAbort = () => reject(pollingSignal.reason)
    if (pollingSignal.aborted) onAbort()
    else pollingSignal.addEventListener('abort', onAbort, {once: true})
  })
  aborted.catch(() => undefined)
  try {
    return await Promise.race([client.pollDeviceAuthorizationGrant(oidc, authorization, undefined, {signal: pollingSignal}), aborted])
  } catch (error) {
    if (signal?.aborted) throw new LoginAbortedError({cause: error})
    if (deadline.aborted) throw new LoginExpiredError({cause: error})
    switch (oauthErrorCode(error)) {
      case 'access_denied':
        throw new LoginDeniedError((error as client.ResponseBodyError).error_description, {cause: error})
      case 'expired_token':
        throw new LoginExpiredError({cause: error})
      case 'invalid_grant':
        // Some IdPs (oidc-provider among them) forget a code once it has expired and then call it
        // unknown rather than expired; past its lifetime that is the same thing to the user.
        if (Date.now() >= expiresAt - 2000) throw new LoginExpiredError({cause: error})
        throw toIdentityError(error, oidc.serverMetadata().issuer)
      default:
        throw toIdentityError(error, oidc.serverMetadata().issuer)
    }
  }
}

function deviceStartError(error: unknown, config: IdentityConfig) {
  switch (oauthErrorCode(error)) {
    case 'unauthorized_client':
    case 'invalid_grant':
      return new IdpError(`The client "${config.clientId}" may not use the device-code grant at ${config.issuer}.`, {
        oauthError: oauthErrorCode(error),
        cause: error,
        nextStep: 'Enable the OAuth 2.0 Device Authorization grant for this client at your IdP (see docs/identity.md).',
      })
    case 'invalid_scope':
      return new IdpError(`The identity provider refused the requested scopes.`, {
        oauthError: 'invalid_scope',
        cause: error,
        nextStep: 'Adjust `identity.scopes` in dbgate.yaml, or pass --scope, to scopes the dbgate client may request.',
      })
    case 'invalid_client':
      return new IdpError(`The identity provider does not know the client "${config.clientId}".`, {
        oauthError: 'invalid_client',
        cause: error,
        nextStep: 'Check `identity.clientId` in dbgate.yaml against the client registered at your IdP.',
      })
    default:
      return toIdentityError(error, config.issuer)
  }
}

