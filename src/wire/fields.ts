/** Wire types shared by the framer's decoders and the layers above (proxy, masking, policy). */

/** Fields of an ErrorResponse / NoticeResponse, by their protocol letters' meaning. */
export interface PgNoticeFields {
  severity: 'ERROR' | 'FATAL' | 'PANIC' | 'WARNING' | 'NOTICE' | 'DEBUG' | 'INFO' | 'LOG'
  /** SQLSTATE, five characters. */
  code: string
  message: string
  detail?: string
  hint?: string
  /** 1-based character position of the error in the statement text (ErrorResponse field P). */
  position?: string
}

/** One column of a RowDescription. */
export interface FieldDescription {
  name: string
  tableOid: number
  columnAttr: number
  typeOid: number
  typeSize: number
  typeModifier: number
  format: number
}
