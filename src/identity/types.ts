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

/**
 * Whether two verified identities are one person, for rules such as "nobody reviews their own
 * request": the same subject, or the same verified e-mail address. One person can hold several
 * subjects at one IdP (Entra ID's `sub` is pairwise, one per client application; OIDC pairwise
 * subject types; linked accounts sharing a mailbox), and whoever reads a mailbox is its owner. Case
 * and compatibility forms (fullwidth letters) are folded first, so a spelling the IdP keeps apart
 * still names the same mailbox here: treating two people as one only ever refuses more.
 */
export function samePerson(a: Pick<Identity, 'subject' | 'email'>, b: Pick<Identity, 'subject' | 'email'>): boolean {
  if (a.subject === b.subject) return true
  return a.email !== undefined && b.email !== undefined && mailbox(a.email) === mailbox(b.email)
}

function mailbox(email: string): string {
  return email.normalize('NFKC').trim().toLowerCase()
}
