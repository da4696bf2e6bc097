/**
 * A small shop's schema with realistic but fake personal data, generated deterministically so
 * every demo (and every test that uses it) sees the same rows.
 */

const FIRST = ['Alice', 'Bruno', 'Chiara', 'Dmitri', 'Eva', 'Farid', 'Grace', 'Hiro', 'Ines', 'Jonas', 'Kemi', 'Lena', 'Mateo', 'Nora', 'Omar', 'Priya']
const LAST = ['Martin', 'Okafor', 'Rossi', 'Ivanov', 'Novak', 'Haddad', 'Hopper', 'Tanaka', 'Silva', 'Berg', 'Adeyemi', 'Fischer', 'Garcia', 'Lindqvist', 'Aziz', 'Raman']
const STREETS = ['Maple Street', 'Harbour Road', 'Linden Allee', 'Via Roma', 'Rue du Moulin', 'Station Lane']
const CITIES = ['Springfield', 'Portsmouth', 'Leipzig', 'Bologna', 'Lyon', 'Uppsala']

/** A tiny PRNG so the data is the same on every run. */
function rng(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0
    return s / 2 ** 32
  }
}

function luhnComplete(prefix: string): string {
  let sum = 0
  for (let i = 0; i < prefix.length; i++) {
    let d = Number(prefix[prefix.length - 1 - i])
    if (i % 2 === 0) {
      d *= 2
      if (d > 9) d -= 9
    }
    sum += d
  }
  return prefix + String((10 - (sum % 10)) % 10)
}

const q = (s: string) => `'${s.replace(/'/g, "''")}'`

export interface SampleCustomer {
  id: number
  fullName: string
  email: string
  phone: string
  ssn: string
  birthDate: string
  address: string
  card: string
}

export function sampleCustomers(n = 24): SampleCustomer[] {
  const r = rng(42)
  const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)]!
  const out: SampleCustomer[] = []
  for (let i = 1; i <= n; i++) {
    const first = FIRST[(i - 1) % FIRST.length]!
    const last = pick(LAST)
    const digits = (k: number) => Array.from({length: k}, () => Math.floor(r() * 10)).join('')
    out.push({
      id: i,
      fullName: `${first} ${last}`,
      email: `${first.toLowerCase()}.${last.toLowerCase()}${i}@example.com`,
      phone: `+1-555-${digits(3)}-${digits(4)}`,
      // 9xx area numbers are never issued, so these can never be real SSNs.
      ssn: `9${digits(2)}-${digits(2)}-${digits(4)}`,
      birthDate: `${1950 + Math.floor(r() * 50)}-${String(1 + Math.floor(r() * 12)).padStart(2, '0')}-${String(1 + Math.floor(r() * 28)).padStart(2, '0')}`,
      address: `${1 + Math.floor(r() * 200)} ${pick(STREETS)}, ${pick(CITIES)}`,
      card: luhnComplete(`4000${digits(11)}`),
    })
  }
  return out
}

export function sampleSchemaSql(): string {
  const customers = sampleCustomers()
  const lines = [
    `create table customers (
  id int primary key,
  full_name text not null,
  email text not null unique,
  phone text,
  ssn text,
  birth_date date,
  address text,
  country text not null default 'US',
  created_at timestamptz not null default now()
);`,
    `create table orders (
  id int primary key,
  customer_id int not null references customers(id),
  status text not null,
  total_cents int not null,
  placed_at timestamptz not null
);`,
    `create table payments (
  id int primary key,
  order_id int not null references orders(id),
  card_number text not null,
  amount_cents int not null,
  paid_at timestamptz not null
);`,
  ]
  for (const c of customers) {
    lines.push(`insert into customers (id, full_name, email, phone, ssn, birth_date, address) values (${c.id}, ${q(c.fullName)}, ${q(c.email)}, ${q(c.phone)}, ${q(c.ssn)}, ${q(c.birthDate)}, ${q(c.address)});`)
  }
  const r = rng(7)
  const statuses = ['placed', 'paid', 'shipped', 'delivered', 'refunded']
  let orderId = 0
  for (const c of customers) {
    const n = 1 + Math.floor(r() * 3)
    for (let k = 0; k < n; k++) {
      orderId++
      const total = 500 + Math.floor(r() * 20000)
      const day = 1 + Math.floor(r() * 28)
      lines.push(`insert into orders values (${orderId}, ${c.id}, ${q(statuses[Math.floor(r() * statuses.length)]!)}, ${total}, '2026-10-${String(day).padStart(2, '0')} 12:00:00+00');`)
      lines.push(`insert into payments values (${orderId}, ${orderId}, ${q(c.card)}, ${total}, '2026-10-${String(day).padStart(2, '0')} 12:05:00+00');`)
    }
  }
  return lines.join('\n')
}
