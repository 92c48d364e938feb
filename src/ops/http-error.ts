/**
 * A refusal by the HTTP layer itself, with its status. The codes are the gateway's own, for what
 * only HTTP has (a token, a body, a route); a refused batch keeps the package's ErrorCode
 * (`INVALID_BATCH_JOB`), so a client sees one code for one problem whichever layer found it.
 */
export type HttpErrorCode =
  | 'UNAUTHORIZED'
  | 'NOT_FOUND'
  | 'BODY_TOO_LARGE'
  | 'ROW_TOO_LARGE'
  | 'INCOMPLETE_BODY'
  | 'GATEWAY_BUSY'
  | 'INVALID_BATCH_JOB';

export class HttpError extends Error {
  readonly status: number;
  readonly code: HttpErrorCode;
  readonly headers: Readonly<Record<string, string>>;

  constructor(status: number, code: HttpErrorCode, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.headers = headers;
  }
}
