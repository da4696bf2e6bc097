/**
 * Where the MCP tools send their SQL: any PostgreSQL endpoint that runs dbgate's pipeline: the
 * tunnel `dbgate mcp` opens in-process (`openLocalEndpoint`), or the gateway's pipeline behind its
 * remote MCP endpoint (src/gateway/mcp.ts), which `dbgate mcp` reaches when dbgate.yaml names a
 * gateway (src/mcp/gateway-bridge.ts), so the tools do not change.
 */
import type pg from 'pg'
import {DEFAULT_MCP} from '../config/schema.js'
import type {TargetConfig} from '../config/types.js'
import type {AgentInfo, Identity} from '../identity/types.js'
import type {RecordedFor} from '../proxy/tunnel.js'

export interface SqlEndpoint {
  /** How a PostgreSQL client reaches the endpoint (host or socket directory, port, user, secret, database). */
  clientConfig(): pg.ClientConfig
  /** The verified identity the endpoint acts for, when it has one. */
  identity(): Identity | undefined
  /** Resolves when the endpoint has gone away (e.g. the sign-in could not be renewed). */
  readonly closed: Promise<void>
  close(): Promise<void>
  /**
   * Records an event in the log of the endpoint's session whose cancel key (BackendKeyData) is
   * `key`, signed and chained with its statements. `session-ended`: that session takes no more (its
   * log is full, which ends it, or it is ending), so the event belongs in another; `unrecorded`: the
   * endpoint could not record it.
   */
  record?(key: {processId: number; secretKey: number}, type: string, payload: unknown): RecordedFor
  /**
   * Ends each of the endpoint's sessions once its statement in flight is over, with `message` as the
   * reason its log records and its client is told: the server serving the agent ended them (the
   * gateway took its owner's access away), which the sessions' clients closing would record as the
   * agent hanging up.
   */
  endSessions?(message: string): void
}

/** Opens the endpoint once the agent is known (after the MCP handshake). */
export type OpenEndpoint = (agent: AgentInfo) => Promise<SqlEndpoint>

/** Room for what the tools send (a statement of up to 1 Mi characters, its parameters) and the rows of their own catalog queries and plans. */
const TOOL_MESSAGE_FLOOR = 16 * 1024 ** 2

/**
 * The largest protocol message an agent's tunnel passes, either way (its `tunnel.maxMessageSize`).
 * A row larger than `mcp.maxBytes` never reaches the agent (the result is truncated before it), but
 * the client library reads a message whole, and the tools turn it into text and JSON: a 300 MB value
 * (`select repeat('x', 300000000)`) held some 2 GB in the process serving the agent, the gateway's
 * for remote MCP. Past this limit the tunnel refuses the message from its header, before reading it.
 */
export function agentMessageLimit(target: TargetConfig): number {
  const maxBytes = (target.mcp ?? DEFAULT_MCP).maxBytes
  return Math.min(target.tunnel.maxMessageSize, Math.max(TOOL_MESSAGE_FLOOR, 2 * maxBytes))
}
