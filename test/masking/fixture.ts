import pg from 'pg'
import {to as copyTo} from 'pg-copy-streams'
import {afterAll, beforeAll} from 'vitest'
import type {MaskingConfig} from '../../src/config/types.js'
import {sampleCustomers, sampleSchemaSql} from '../../src/demo/sample-data.js'
import {discoverCatalog, type Catalog} from '../../src/masking/catalog.js'
import {oneAtATime} from '../../src/masking/catalog-query.js'
import {later} from '../helpers/later.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'

/** Secrets and free text that only the value scanner (or the dictionary) can catch. */
export const EXTRA = {
  noteEmail: 'zed.hidden@example.net',
  noteSsn: '912-34-5678',
  noteCard: '4111 1111 1111 1111',
  noteIban: 'DE89370400440532013000',
  noteAws: 'AKIAIOSFODNN7EXAMPLE',
  githubToken: 'ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789',
  stripeKey: 'sk_live_4eC39HqLyjWDarjtT1zdp7dc',
  slackToken: 'xoxb-123456789012-abcdefghijkl',
  jwt: 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c',
  iban: 'GB82WEST12345698765432',
  passwordHash: '$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW',
  privateKey: '-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n-----END RSA PRIVATE KEY-----',
  ip: '203.0.113.77',
  payloadEmail: 'json.person@example.org',
}

const EXTRA_SQL = `
create table accounts (
  id int primary key,
  customer_id int references customers(id),
  iban text,
  api_key text,
  password_hash text,
  session_token text,
  last_ip inet,
  signing_key text
);
insert into accounts values (1, 1, '${EXTRA.iban}', '${EXTRA.githubToken}', '${EXTRA.passwordHash}', '${EXTRA.jwt}', '${EXTRA.ip}', '${EXTRA.privateKey}');
create table notes (id int primary key, body text);
insert into notes values
  (1, 'call back at ${EXTRA.noteEmail} re ssn ${EXTRA.noteSsn}'),
  (2, 'card ${EXTRA.noteCard} and iban ${EXTRA.noteIban}'),
  (3, 'keys: ${EXTRA.noteAws} ${EXTRA.stripeKey} ${EXTRA.slackToken}'),
  (4, 'nothing to see here');
create table events (id int primary key, payload jsonb);
insert into events values (1, '{"kind": "signup", "contact": {"email": "${EXTRA.payloadEmail}"}, "n": 1}');
create view v_contacts as select id, email as contact, full_name as who from customers;
create function get_email(i int) returns text language sql as 'select email from customers where id = i';
create function notify_change() returns trigger language plpgsql as $$
begin
  perform pg_notify('changes', row_to_json(new)::text);
  perform pg_notify('changes', new.email);
  return new;
end $$;
analyze customers;
create trigger customers_changed after update on customers for each row execute function notify_change();
`

export interface MaskingFixture {
  db: UpstreamInfo
  catalog: Catalog
  /** Every clear value that must never reach a masked client. */
  secrets: string[]
  close(): Promise<void>
}

export const NO_CONFIG: MaskingConfig = {unmask: [], mask: [], unmaskColumns: [], strategies: {}, onUntraceable: 'mask'}

export async function maskingFixture(): Promise<MaskingFixture> {
  const db = await createTestDatabase('mask')
  await withClient(db.url, async (c) => {
    await c.query(sampleSchemaSql())
    await c.query(EXTRA_SQL)
  })
  const admin = new pg.Client({connectionString: db.url})
  await admin.connect()
  const catalog = await discoverCatalog(oneAtATime(async (sql) => (await admin.query(sql)).rows))
  const secrets: string[] = []
  for (const c of sampleCustomers()) {
    secrets.push(c.email, c.phone, c.ssn, c.fullName, c.address, c.card)
    // A date of birth on 1 January is its own year-only mask; every other one must not appear.
    if (!c.birthDate.endsWith('-01-01')) secrets.push(c.birthDate)
  }
  secrets.push(...Object.values(EXTRA))
  return {db, catalog, secrets, close: () => admin.end()}
}

/** The clear values that occur in `seen`. */
export function leaked(seen: Buffer | string, secrets: string[]): string[] {
  const hay = typeof seen === 'string' ? Buffer.from(seen, 'utf8') : seen
  return secrets.filter((s) => hay.includes(Buffer.from(s, 'utf8')))
}

/** Every byte a COPY … TO STDOUT sends the client, as one buffer. */
export async function copyOut(c: pg.Client, sql: string): Promise<Buffer> {
  const chunks: Buffer[] = []
  const stream = c.query(copyTo(sql))
  await new Promise<void>((resolve, reject) => {
    stream.on('data', (d: Buffer) => chunks.push(d))
    stream.on('end', () => resolve())
    stream.on('error', reject)
  })
  return Buffer.concat(chunks)
}

/**
 * The masking fixture and the tunnel `dbgate connect` builds in front of it (`targetExtra` added
 * to the target), opened in `beforeAll` and closed in `afterAll`.
 */
export function maskedTunnel(targetExtra = 'policy: none'): {fx: MaskingFixture; tunnel: PipelineTunnel} {
  let fx: MaskingFixture | undefined
  let tunnel: PipelineTunnel | undefined
  beforeAll(async () => {
    fx = await maskingFixture()
    tunnel = await openPipelineTunnel(fx.db, targetExtra)
  })
  afterAll(async () => {
    await tunnel?.close()
    await fx?.close()
  })
  return {fx: later(() => fx, 'the masking fixture'), tunnel: later(() => tunnel, 'the tunnel')}
}
