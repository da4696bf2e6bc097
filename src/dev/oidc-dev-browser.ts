/**
 * Plays the person at the browser for the development provider's device flow: enters the user code,
 * confirms (or aborts), signs in. Used by tests and by `dbgate demo` to approve a login unattended.
 * It drives plain HTTP with a cookie jar, exactly the requests a browser would send.
 */

export interface DeviceApproval {
  /** The verification URI the IdP returned (the page where the code is typed). */
  verificationUri: string
  userCode: string
  user: string
  password: string
  /** Abort at the confirmation step instead of approving (the IdP then answers access_denied). */
  deny?: boolean
  /** Stop on the sign-in page, as a person who closes the tab there does. */
  closeBeforeSignIn?: boolean
}

class Browser {
  private readonly cookies = new Map<string, string>()

  async request(url: string, init: {method?: string; form?: Record<string, string>} = {}): Promise<{url: string; status: number; html: string}> {
    let current = url
    let method = init.method ?? 'GET'
    let body: string | undefined = init.form ? new URLSearchParams(init.form).toString() : undefined
    for (let hops = 0; hops < 20; hops++) {
      const headers: Record<string, string> = {cookie: [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ')}
      if (body !== undefined) headers['content-type'] = 'application/x-www-form-urlencoded'
      const res = await fetch(current, {method, headers, body, redirect: 'manual'})
      for (const line of res.headers.getSetCookie()) {
        const [pair] = line.split(';')
        const eq = pair.indexOf('=')
        const name = pair.slice(0, eq).trim()
        const value = pair.slice(eq + 1).trim()
        if (/expires=Thu, 01 Jan 1970/i.test(line) || value === '') this.cookies.delete(name)
        else this.cookies.set(name, value)
      }
      const location = res.headers.get('location')
      if (res.status >= 300 && res.status < 400 && location) {
        await res.body?.cancel()
        current = new URL(location, current).toString()
        method = 'GET'
        body = undefined
        continue
      }
      return {url: current, status: res.status, html: await res.text()}
    }
    throw new Error(`too many redirects from ${url}`)
  }
}

function hidden(html: string, name: string): string {
  const match = new RegExp(`name="${name}" value="([^"]*)"`).exec(html)
  if (!match) throw new Error(`the page has no hidden field "${name}"`)
  return match[1]
}

function formAction(html: string, fallback: string): string {
  const match = /<form[^>]*action="([^"]+)"/.exec(html)
  return match ? new URL(match[1], fallback).toString() : fallback
}

/** What a page says, without its markup. */
export function pageText(html: string): string {
  return html.replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').trim()
}

/** Enters `userCode` on the verification page, as typing it would; resolves to the page that follows. */
export async function enterDeviceCode(verificationUri: string, userCode: string): Promise<{status: number; html: string}> {
  const browser = new Browser()
  const entry = await browser.request(verificationUri)
  return browser.request(formAction(entry.html, entry.url), {method: 'POST', form: {xsrf: hidden(entry.html, 'xsrf'), user_code: userCode}})
}

/** Resolves once the IdP shows its final page; rejects if a step does not go as a browser would expect. */
export async function approveDeviceCode(approval: DeviceApproval): Promise<{status: number; html: string}> {
  const browser = new Browser()
  const entry = await browser.request(approval.verificationUri)
  const action = formAction(entry.html, entry.url)
  const confirm = await browser.request(action, {
    method: 'POST',
    form: {xsrf: hidden(entry.html, 'xsrf'), user_code: approval.userCode},
  })
  if (confirm.status !== 200) throw new Error(`user code rejected (HTTP ${confirm.status})`)
  if (!confirm.html.includes('name="user_code" value=')) throw new Error(`user code not accepted: ${pageText(confirm.html)}`)
  const decision: Record<string, string> = {xsrf: hidden(confirm.html, 'xsrf'), user_code: hidden(confirm.html, 'user_code')}
  if (approval.deny) decision.abort = 'yes'
  else decision.confirm = 'yes'
  const login = await browser.request(action, {method: 'POST', form: decision})
  if (approval.deny) return login
  if (!login.html.includes('name="login"')) throw new Error(`expected the sign-in page, got HTTP ${login.status}`)
  if (approval.closeBeforeSignIn) return login
  const done = await browser.request(formAction(login.html, login.url), {
    method: 'POST',
    form: {login: approval.user, password: approval.password},
  })
  if (done.status !== 200) throw new Error(`sign-in did not complete (HTTP ${done.status})`)
  return done
}
