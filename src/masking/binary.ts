/**
 * Masking values in PostgreSQL's binary result format. Text-like types are UTF-8 bytes (jsonb with
 * a version byte in front) and go through the text path; other types get a type-valid constant or
 * NULL, since rebuilding arbitrary binary encodings is not worth the risk of a malformed value.
 */
import type {MaskingCategory, MaskingStrategy} from './categories.js'
import {OID} from './values.js'

const DAY_MS = 86_400_000
const PG_EPOCH = Date.UTC(2000, 0, 1)

/** The text inside a binary value of a text-like type, and how to put text back. */
export function binaryText(value: Buffer, typeOid: number): {text: string; wrap(text: string): Buffer} | undefined {
  if (typeOid === OID.jsonb) {
    if (value[0] !== 1) return undefined
    return {text: value.subarray(1).toString('utf8'), wrap: (t) => Buffer.concat([Buffer.from([1]), Buffer.from(t, 'utf8')])}
  }
  return {text: value.toString('utf8'), wrap: (t) => Buffer.from(t, 'utf8')}
}

/** A masked binary value for a non-text type; null means SQL NULL. */
export function maskBinaryValue(value: Buffer, typeOid: number, category: MaskingCategory, strategy: MaskingStrategy): Buffer | null {
  if (strategy === 'null') return null
  switch (typeOid) {
    case OID.date: {
      let days = Math.round((Date.UTC(1900, 0, 1) - PG_EPOCH) / DAY_MS)
      if (category === 'birth_date' && strategy === 'partial' && value.length === 4) {
        const year = new Date(PG_EPOCH + value.readInt32BE(0) * DAY_MS).getUTCFullYear()
        days = Math.round((Date.UTC(year, 0, 1) - PG_EPOCH) / DAY_MS)
      }
      const out = Buffer.alloc(4)
      out.writeInt32BE(days)
      return out
    }
    case OID.timestamp:
    case OID.timestamptz: {
      if (value.length !== 8) return null
      let year = 1900
      if (category === 'birth_date' && strategy === 'partial') year = new Date(PG_EPOCH + Number(value.readBigInt64BE(0) / 1000n)).getUTCFullYear()
      const out = Buffer.alloc(8)
      out.writeBigInt64BE(BigInt(Date.UTC(year, 0, 1) - PG_EPOCH) * 1000n)
      return out
    }
    case OID.int2:
    case OID.int4:
    case OID.int8:
    case OID.float4:
    case OID.float8:
      // Zero has the same length and is valid in every one of these encodings.
      return Buffer.alloc(value.length)
    default:
      return null
  }
}
