/**
 * The webhook shows a held statement as one Slack code span, so that nothing in it is read as
 * formatting. The agent's name (what the MCP client says it is) and the requester's label were
 * written around it as they were: a backtick in the agent's name paired with the span's opening
 * one, and the statement came out of its span as Slack mrkdwn, where `~always~` is struck through
 * (`… where id = 1 or '~always~' <> ''` reads as a one-row update) and `*`/`_` emphasise or swallow parts.
 *
 * A real tunnel opened for an agent (as `dbgate mcp` opens it), a real IdP, real PostgreSQL,
 * node-postgres, and an HTTP server as the webhook.
 */
import http from 'node:http'
import type {AddressInfo} from 'node:net'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {decide} from '../../src/approvals/review.js'
import {buildTunnelHooks} from '../../src/pipeline/index.js'
import {openPipelineTunnel} from '../helpers/open.js'
import {withClient} from '../helpers/pg.js'
import {waitFor} from '../helpers/wait.js'
import {approvalSetting, watchNotices, type ApprovalSetting} from './helpers.js'

const TARGET = ['allow: [engineering]', 'reviewers: [dba]', 'mcp:', '  mode: read-write', 'rules:', '  - id: agent-writes-need-review', '    match: {class: write, client: mcp}', '    action: require_approval', 'approvals:', '  expiry: 15m'].join('\n')

/** The parts of a Slack message that are code (inside a span), in order, as Slack shows them (entities decoded). */
function codeSpans(text: string): string[] {
  return text
    .split('`')
    .filter((_, i) => i % 2 === 1)
    .map((c) => c.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&'))
}

describe('the webhook keeps a held statement in its code span', () => {
  let s: ApprovalSetting
  let hook: http.Server
  const posts: string[] = []
  beforeAll(async () => {
    s = await approvalSetting({database: 'webhook_labels', target: TARGET, requester: 'alice', others: ['bob']})
    await withClient(s.db.url, (c) => c.query('create table accounts_hook (id int, balance int); insert into accounts_hook values (1, 10), (2, 20)'))
    hook = http.createServer((req, res) => {
      let body = ''
      req.on('data', (d: Buffer) => (body += d.toString()))
      req.on('end', () => {
        posts.push((JSON.parse(body) as {text: string}).text)
        res.end('ok')
      })
    })
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r))
  })
  afterAll(async () => {
    hook?.close()
    await s?.close()
  })

  for (const name of ['helper`', 'a`b`c', 'x` *bold* `', '``']) {
    it(`for an agent named ${JSON.stringify(name)}`, async () => {
      const t = await openPipelineTunnel(s.db, `${TARGET}\n  webhook: http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook`, {
        top: `bucket: ${s.bucketUrl}`,
        identity: {issuer: s.p.f.dev.issuer, clientId: s.p.f.dev.cliClientId, env: s.p.env('alice')},
        agent: {client: 'mcp', name, version: '1.0'},
        hooks: (ctx) => buildTunnelHooks({...ctx, approvalPollMs: 100}),
      })
      try {
        const c = await t.client()
        const sql = "update accounts_hook set balance = 0 where id = 1 or '~always~' <> ''"
        const w = watchNotices(c)
        const held = c.query(sql).catch((e: Error & {code?: string}) => e.code)
        const id = await w.approvalId()
        await waitFor(() => posts.some((x) => x.includes(id)), 'the webhook is told')
        const post = posts.find((x) => x.includes(id))!
        // The statement is whole inside one code span, and the agent is named.
        expect(codeSpans(post), post).toContain(sql)
        expect(post).toMatch(/through the agent/)
        await decide({bucket: s.bucket, config: s.config, reviewer: await s.p.reviewer('bob')}, {id, action: 'deny', reason: 'not now'})
        expect(await held).toBe('42501')
      } finally {
        await t.close().catch(() => {})
      }
    })
  }
})
