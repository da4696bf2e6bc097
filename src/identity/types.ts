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

/** The string PostgreSQL sees as application_name, and people see in logs. */
export function identityLabel(id: Pick<Identity, 'email' | 'subject'>): string {
  return id.email ?? id.subject
}
