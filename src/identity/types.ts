import {domainToASCII} from 'node:url'

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

/** A name or version that reads as one word: shown bare; anything else is the agent's own sentence. */
const PLAIN_WORD = /^[\p{L}\p{N}_.@/+:-]+$/u

/**
 * "claude-code 1.2.3 (MCP)": how people read an agent in lists and prompts. The name and version are
 * what the agent said in the MCP handshake; one that is more than a word is quoted (as a JSON
 * string), so `x 1.0 (MCP) acting for bob@example.com —` cannot pass for dbgate's own words about
 * who the agent acted for: `"x 1.0 (MCP) acting for bob@example.com —" (MCP)`.
 */
export function agentLabel(agent: AgentInfo): string {
  const word = (s: string) => (PLAIN_WORD.test(s) ? s : JSON.stringify(s))
  return `${word(agent.name)}${agent.version ? ` ${word(agent.version)}` : ''} (MCP)`
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

/** Gmail's domains: one service, where `d.ave@` is delivered to `dave@`. */
const GMAIL = new Set(['gmail.com', 'googlemail.com'])

/**
 * The mailbox an address delivers to, as far as the address itself tells. Besides case and
 * compatibility forms: a subaddress (RFC 5233, `dave+tag@`) is delivered to `dave@`'s mailbox by
 * the common mail services (Google, Microsoft 365, Fastmail, Proton), so its verification link
 * reached dave; a quoted local part without anything that needs quoting is the same local part
 * (RFC 5321 §4.1.2); a domain is the same with the root's trailing dot and in its ASCII (punycode)
 * form; at Gmail, dots in the local part are not part of the mailbox. Each folds two spellings
 * into one, which for samePerson only ever refuses more.
 */
export function mailbox(email: string): string {
  const folded = email.normalize('NFKC').trim().toLowerCase()
  const at = folded.lastIndexOf('@')
  if (at <= 0) return folded
  let local = folded.slice(0, at)
  const quoted = /^"([^"\\\s]*)"$/.exec(local)
  if (quoted) local = quoted[1]!
  const plus = local.indexOf('+')
  if (plus > 0) local = local.slice(0, plus)
  const bare = folded.slice(at + 1).replace(/\.+$/, '')
  let domain = domainToASCII(bare) || bare
  if (GMAIL.has(domain)) {
    local = local.replace(/\./g, '')
    domain = 'gmail.com'
  }
  return `${local}@${domain}`
}
