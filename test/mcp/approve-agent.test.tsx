import {stripVTControlCharacters} from 'node:util'
import {render} from 'ink-testing-library'
import {afterEach, expect, it} from 'vitest'
import {requestRow} from '../../src/approvals/format.js'
import type {ApprovalRequest, RequestView} from '../../src/approvals/types.js'
import {ApprovalsApp} from '../../src/tui/approvals/App.js'
import {waitFor} from '../helpers/wait.js'

const NOW = new Date('2026-11-22T10:00:00Z')

const request: ApprovalRequest = {
  v: 1,
  id: 'apr-agent00001',
  target: 'prod',
  database: 'app',
  requester: {subject: 'alice', email: 'alice@example.com', name: 'Alice Example', groups: ['engineering'], issuer: 'https://login.example.com', kind: 'human'},
  sessionId: 's-1',
  connectionId: 1,
  sql: "update orders set status = 'refunded' where id = 42",
  statements: [],
  class: 'write',
  ruleId: 'agents-need-review',
  reason: 'an agent wants to change data',
  reviewers: ['dba'],
  createdAt: new Date(NOW.getTime() - 30_000).toISOString(),
  expiresAt: new Date(NOW.getTime() + 870_000).toISOString(),
  windows: false,
  sealKey: 'x',
  host: 'laptop',
  recent: [],
  agent: {client: 'mcp', name: 'claude-code', version: '2.1.0'},
}

let instance: ReturnType<typeof render> | undefined
afterEach(() => instance?.unmount())

it('shows the reviewer that an AI agent asks, which one, and for whom', async () => {
  const views: RequestView[] = [{request, state: 'pending'}]
  instance = render(<ApprovalsApp source={{load: async () => views, decide: async () => 'done'}} reviewer="bob@example.com" now={() => NOW} refreshMs={60_000} />)
  const frame = () => stripVTControlCharacters(instance?.lastFrame() ?? '')
  await waitFor(() => frame().includes('apr-agent00001 ·'), () => `the detail pane is drawn; last frame:\n${frame()}`, {timeoutMs: 5000, intervalMs: 10})
  expect(frame()).toMatch(/alice@example\.com via claude-code 2\.1\.0 \(MCP\)/)
  expect(frame()).toMatch(/AI agent claude-code 2\.1\.0 \(MCP\) acting for alice@example\.com/)
  // `dbgate approvals list` uses the same row.
  expect(requestRow(views[0]!, NOW).requester).toBe('alice@example.com via claude-code 2.1.0 (MCP)')
  // A person's own request reads as before.
  const {agent: _agent, ...personal} = request
  expect(requestRow({request: personal, state: 'pending'}, NOW).requester).toBe('alice@example.com')
})
