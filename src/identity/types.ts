/** A verified identity, as every other part of dbgate sees it. Never holds a token itself. */
export interface Identity {
  subject: string
  email?: string
  name?: string
  groups: string[]
  issuer: string
  /** `service` for client-credentials and externally issued tokens of machine clients. */
  kind: 'human' | 'service'
  /** SHA-256 (hex) of the token that proved this identity, so events can be tied to it without the token. */
  tokenHash: string
  /** The token's `jti` where it has one. */
  tokenId?: string
  /** The OAuth client the token was issued to (`azp` / `client_id`), where the token names one. */
  clientId?: string
  expiresAt: Date
}

/**
 * An AI agent acting for an identity through `dbgate mcp`: the client's own name and version from
 * the MCP handshake (what it says it is; the identity is what was verified).
 */
export interface AgentInfo {
  client: 'mcp'
  name: string
  version?: string
}

/** "claude-code 1.2.3 (MCP)": how people read an agent in lists and prompts. */
export function agentLabel(agent: AgentInfo): string {
  return `${agent.name}${agent.version ? ` ${agent.version}` : ''} (MCP)`
}

/** The string PostgreSQL sees as application_name, and people see in logs. */
export function identityLabel(id: Pick<Identity, 'email' | 'subject'>): string {
  return id.email ?? id.subject
}
