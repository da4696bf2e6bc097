/**
 * The dictionary that decides, from a column's name and type alone, whether it holds sensitive
 * values. Name rules are anchored on word boundaries of snake_case / camelCase names so that
 * `email`, `contact_email` and `emailAddress` match while `emailed_at` or `remaining` do not.
 */
import type {MaskingCategory, MaskingStrategy} from '../config/types.js'

export type {MaskingCategory, MaskingStrategy}

export interface Classification {
  category: MaskingCategory
  /** Why, for people reading `dbgate masking scan` or an audit record: `name matches /e?mail/`. */
  reason: string
}

/** What each category is masked with when the configuration does not say. */
export const DEFAULT_STRATEGIES: Record<MaskingCategory, MaskingStrategy> = {
  email: 'partial',
  phone: 'partial',
  person_name: 'redact',
  address: 'redact',
  birth_date: 'partial',
  national_id: 'partial',
  card: 'partial',
  bank_account: 'partial',
  password: 'redact',
  secret: 'redact',
  token: 'redact',
  ip_address: 'partial',
  untraceable: 'redact',
}

interface NameRule {
  category: MaskingCategory
  /** Matched against the column name split into lower-case words joined by `_`. */
  pattern: RegExp
  /** How the rule is shown in a reason. */
  shown: string
  /** Column types (pg_type.typname) the rule applies to; undefined means any. */
  types?: RegExp
}

// Word-boundary helpers over the normalised `a_b_c` form.
const w = (body: string) => new RegExp(`(^|_)(${body})(_|$)`)

const TEXTISH = /^(text|varchar|bpchar|char|citext|name|json|jsonb|bytea|_text|_varchar)$/
const DATEISH = /^(date|timestamp|timestamptz|text|varchar|bpchar)$/

/** Order matters: the first rule that matches decides (`card_token` is a token, not a card). */
const NAME_RULES: NameRule[] = [
  {category: 'password', pattern: w('password|passwd|pwd|pass_hash|password_hash|passhash|pw_hash|crypted_password|encrypted_password|hashed_password'), shown: '/password|passwd|pwd/'},
  {category: 'secret', pattern: w('secret|secrets|private_key|privkey|api_key|apikey|access_key|secret_key|signing_key|client_secret|otp_secret|totp_secret|mfa_secret|salt'), shown: '/secret|private_key|api_?key|access_key/'},
  {category: 'token', pattern: w('token|tokens|access_token|refresh_token|id_token|auth_token|session_token|bearer|jwt|session_key|reset_token|api_token|otp|totp|recovery_code|recovery_codes'), shown: '/token|jwt|bearer|otp/'},
  {category: 'email', pattern: w('e?mail|e_mail|email_address|mail_address|emailaddress'), shown: '/e?mail/', types: TEXTISH},
  {category: 'phone', pattern: w('phone|phone_number|telephone|tel|mobile|cell|cellphone|fax|msisdn|whatsapp'), shown: '/phone|mobile|tel|fax|msisdn/', types: TEXTISH},
  {category: 'national_id', pattern: w('ssn|social_security|social_security_number|sin|nin|national_id|national_insurance|tax_id|taxid|tin|itin|ein|vat_id|passport|passport_number|driver_license|drivers_license|driving_licence|license_number|nhs_number|personnummer|aadhaar|cpf|curp|nif|nie|dni|insee|bsn'), shown: '/ssn|national_id|tax_id|passport|driver_license|…/'},
  {category: 'card', pattern: w('card|card_number|cardnumber|cc|cc_number|ccnum|credit_card|pan|card_no|cvv|cvc|cvv2|card_cvv'), shown: '/card|cc|pan|cvv/'},
  {category: 'bank_account', pattern: w('iban|bic|swift|account_number|acct_number|bank_account|routing_number|sort_code|aba|bank_acct|acct_no'), shown: '/iban|account_number|routing_number|sort_code/'},
  {category: 'birth_date', pattern: w('dob|birth|birthday|birthdate|birth_date|date_of_birth|birth_day|born|born_on'), shown: '/dob|birth/', types: DATEISH},
  {category: 'ip_address', pattern: w('ip|ip_address|ipaddr|ip_addr|remote_addr|client_ip|last_ip|ipv4|ipv6|x_forwarded_for'), shown: '/ip|ip_address|remote_addr/'},
  {
    category: 'person_name',
    pattern: w('full_name|fullname|first_name|firstname|last_name|lastname|surname|given_name|family_name|middle_name|maiden_name|display_name|legal_name|contact_name|customer_name|patient_name|person_name|cardholder|cardholder_name|holder_name|name_on_card'),
    shown: '/full_name|first_name|last_name|surname|…/',
    types: TEXTISH,
  },
  {
    category: 'address',
    pattern: w('address|addr|street|street_address|address_line|address_line1|address_line2|address1|address2|postcode|postal_code|zip|zipcode|zip_code|home_address|billing_address|shipping_address|geo|latitude|longitude|lat|lng|lon'),
    shown: '/address|street|postal_code|zip|lat|lng/',
  },
]

/** `contactEmail`, `Contact-Email`, `CONTACT_EMAIL` → `contact_email`. */
export function normaliseName(name: string): string {
  return name
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '')
}

/** Types whose values are network addresses, sensitive whatever the column is called. */
const TYPE_RULES: Record<string, Classification> = {
  inet: {category: 'ip_address', reason: 'type is inet'},
  cidr: {category: 'ip_address', reason: 'type is cidr'},
  macaddr: {category: 'ip_address', reason: 'type is macaddr'},
  macaddr8: {category: 'ip_address', reason: 'type is macaddr8'},
}

/**
 * Classifies one column from its name and type name (pg_type.typname, `_text` for text[]).
 * Returns undefined for columns that hold nothing sensitive by these rules.
 */
export function classifyColumn(name: string, typeName: string): Classification | undefined {
  const normalised = normaliseName(name)
  // An `address` that is really an IP address (`ip_address`) is caught by the ip rule first.
  for (const rule of NAME_RULES) {
    if (!rule.pattern.test(normalised)) continue
    if (rule.types && !rule.types.test(typeName)) continue
    if (rule.category === 'address' && /(^|_)(email|mail|ip|mac)(_|$)/.test(normalised)) continue
    return {category: rule.category, reason: `name matches ${rule.shown}`}
  }
  const byType = TYPE_RULES[typeName]
  if (byType) return byType
  return undefined
}
