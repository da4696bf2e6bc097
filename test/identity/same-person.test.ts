/**
 * samePerson's view of a mailbox: spellings a mail service delivers to one mailbox are one person
 * (the requester cannot review their own request under any of them); other mailboxes stay apart.
 * The attack through a real tunnel and IdP is test/approvals/same-person.test.ts's.
 */
import {describe, expect, it} from 'vitest'
import {samePerson} from '../../src/identity/types.js'

const as = (email: string, subject = `sub-${email}`) => ({subject, email})

describe('samePerson', () => {
  it.each([
    ['dave@example.com', 'dave+review@example.com'],
    ['dave+a@example.com', 'dave+b@example.com'],
    ['Dave@Example.com', 'dave+x@EXAMPLE.COM'],
    ['dave@example.com', 'dave@example.com.'],
    ['dave@example.com', '"dave"@example.com'],
    ['dave@bücher.example', 'dave@xn--bcher-kva.example'],
    ['dave@BÜCHER.example', 'dave+tag@xn--bcher-kva.example.'],
  ])('takes %s and %s for one mailbox', (a, b) => {
    expect(samePerson(as(a), as(b))).toBe(true)
    expect(samePerson(as(b), as(a))).toBe(true)
  })

  it.each([
    ['dave@example.com', 'dave2@example.com'],
    ['dave@example.com', 'dave@example.org'],
    ['dave@example.com', 'dave@mail.example.com'],
    ['+dave@example.com', '@example.com'],
    ['"dave smith"@example.com', 'dave@example.com'],
    ['dave.smith@example.com', 'davesmith@example.com'],
  ])('keeps %s and %s apart', (a, b) => {
    expect(samePerson(as(a), as(b))).toBe(false)
  })

  it('is the same subject whatever the e-mails, and never matches on a missing e-mail', () => {
    expect(samePerson({subject: 's', email: 'a@example.com'}, {subject: 's', email: 'b@example.com'})).toBe(true)
    expect(samePerson({subject: 's1'}, {subject: 's2'})).toBe(false)
    expect(samePerson({subject: 's1', email: 'a@example.com'}, {subject: 's2'})).toBe(false)
  })
})
