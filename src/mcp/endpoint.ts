/**
 * Where the MCP tools send their SQL: any PostgreSQL endpoint that runs dbgate's pipeline: the
 * tunnel `dbgate mcp` opens in-process (`openLocalEndpoint`), or the gateway's pipeline behind its
 * remote MCP endpoint (src/gateway/mcp.ts), which `dbgate mcp` reaches when dbgate.yaml names a
 * gateway (src/mcp/gateway-bridge.ts), so the tools do not change.
 */
import type pg from 'pg'
import type {AgentInfo, Identity} from '../identity/types.js'

export interface SqlEndpoint {
  /** How a PostgreSQL client reaches the endpoint (host or socket directory, port, user, secret, database). */
  clientConfig(): pg.ClientConfig
  /** The verified identity the endpoint acts for, when it has one. */
  identity(): Identity | undefined
  /** Resolves when the endpoint has gone away (e.g. the sign-in could not be renewed). */
  readonly closed: Promise<void>
  close(): Promise<void>
}

/** Opens the endpoint once the agent is known (after the MCP handshake). */
export type OpenEndpoint = (agent: AgentInfo) => Promise<SqlEndpoint>
