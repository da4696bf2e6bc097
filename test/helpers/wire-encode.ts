import type {FieldDescription} from '../../src/wire/fields.js'
import {encodeBackendKeyData, encodeDataRow, encodeError, encodeParameterStatus, encodeReadyForQuery, encodeRowDescription} from '../../src/wire/backend.js'
import {Writer} from '../../src/wire/writer.js'

/** Backend messages as a test server sends them. */
const tagged = (code: string, build: (w: Writer) => Writer = (w) => w): Buffer => Buffer.from(build(new Writer(32)).finish(code.charCodeAt(0)))

export function encodeCommandCompleteForTest(tag: string): Buffer {
  return tagged('C', (w) => w.cstring(tag))
}

const FIELD: FieldDescription = {name: 'v', tableOid: 0, columnAttr: 0, typeOid: 25, typeSize: -1, typeModifier: -1, format: 0}

export const server = {
  parseComplete: () => tagged('1'),
  bindComplete: () => tagged('2'),
  closeComplete: () => tagged('3'),
  noData: () => tagged('n'),
  portalSuspended: () => tagged('s'),
  emptyQuery: () => tagged('I'),
  parameterDescription: () => tagged('t', (w) => w.int16(0)),
  /** CopyInResponse for a text-format COPY of one column. */
  copyInResponse: () => tagged('G', (w) => w.byte(0).int16(1).int16(0)),
  rowDescription: (n = 1) => encodeRowDescription(Array.from({length: n}, (_, i) => ({...FIELD, name: `v${i}`}))),
  dataRow: (...values: string[]) => encodeDataRow(values.map((v) => Buffer.from(v))),
  complete: (tag: string) => encodeCommandCompleteForTest(tag),
  ready: (status: 'I' | 'T' | 'E' = 'I') => encodeReadyForQuery(status),
  error: (code: string, message = 'failed', severity: 'ERROR' | 'FATAL' = 'ERROR') => encodeError({severity, code, message}),
  parameterStatus: (name: string, value: string) => encodeParameterStatus(name, value),
  backendKeyData: () => encodeBackendKeyData(7, 8),
}

export {encodeError, encodeReadyForQuery}
