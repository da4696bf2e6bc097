/**
 * Slack-compatible notifications (`{"text": …}`), fire and forget: a slow or broken webhook must
 * never hold a statement or a decision, so failures are only logged.
 */
export interface WebhookOptions {
  url?: string
  log: (level: 'info' | 'warn' | 'error', message: string) => void
  fetch?: typeof fetch
  timeoutMs?: number
}

export function notifyWebhook(opts: WebhookOptions, text: string): Promise<void> {
  if (!opts.url) return Promise.resolve()
  const doFetch = opts.fetch ?? fetch
  // The URL itself is a secret on Slack (it authorises posting), so messages name only its host.
  const where = safeHost(opts.url)
  return doFetch(opts.url, {
    method: 'POST',
    headers: {'content-type': 'application/json'},
    body: JSON.stringify({text}),
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
