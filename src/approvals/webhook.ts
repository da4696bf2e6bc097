/**
 * Slack-compatible notifications (`{"text": …}`), fire and forget: a slow or broken webhook must
 * never hold a statement or a decision, so failures are only logged.
 */
import {visible} from '../util/visible.js'

export interface WebhookOptions {
  url?: string
  log: (level: 'info' | 'warn' | 'error', message: string) => void
  fetch?: typeof fetch
  timeoutMs?: number
}

/**
 * The text as Slack reads it: `<…>` is a link or a mention (`<!channel>`, `<https://…|Approve>`)
 * and `&` starts an entity, so a requester's SQL, an agent's self-chosen name or a name from the
 * IdP could otherwise ping a channel or show a link to anywhere. Invisible and bidi characters are
 * written as visible escapes, as on terminals.
 */
export function slackText(text: string): string {
  return visible(text).replace(/[&<>]/g, (c) => ({'&': '&amp;', '<': '&lt;', '>': '&gt;'})[c]!)
}

/** `s` between backticks as one code span: a backtick inside would end it, so it is shown as ˋ. */
export function slackCode(s: string): string {
  return `\`${slackPlain(s)}\``
}

/**
 * A name someone else chose (an agent's, a requester's label), written outside a code span: a
 * backtick in it would pair with a span's own and take the statement out of it, so it is shown as ˋ.
 */
export function slackPlain(s: string): string {
  return s.replace(/`/g, 'ˋ')
}

export function notifyWebhook(opts: WebhookOptions, text: string): Promise<void> {
  if (!opts.url) return Promise.resolve()
  const doFetch = opts.fetch ?? fetch
  // The URL itself is a secret on Slack (it authorises posting), so messages name only its host.
  const where = safeHost(opts.url)
  return doFetch(opts.url, {
    method: 'POST',
    headers: {'content-type': 'application/json'},
    body: JSON.stringify({text: slackText(text)}),
    signal: AbortSignal.timeout(opts.timeoutMs ?? 5000),
  }).then(
    async (res) => {
      await res.body?.cancel().catch(() => {})
      if (!res.ok) opts.log('warn', `approval webhook at ${where} answered HTTP ${res.status}`)
    },
    (e: Error) => opts.log('warn', `approval webhook at ${where} failed: ${e.message}`),
  )
}

function safeHost(url: string): string {
  try {
    return new URL(url).host
  } catch {
    return 'an invalid URL'
  }
}
