/**
 * JSON's structural characters as character codes: the same numbers as bytes of UTF-8 and as
 * UTF-16 code units, so the scanners that find a batch's rows without parsing them compare
 * against these whether they read a body's bytes (the gateway, src/ops/batch-body.ts) or a
 * part's text (the worker, wire-part.ts).
 */
export const QUOTE = 0x22; // "
export const BACKSLASH = 0x5c; // \
export const COMMA = 0x2c; // ,
export const COLON = 0x3a; // :
export const OPEN_ARRAY = 0x5b; // [
export const CLOSE_ARRAY = 0x5d; // ]
export const OPEN_OBJECT = 0x7b; // {
export const CLOSE_OBJECT = 0x7d; // }
