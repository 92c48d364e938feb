/**
 * Which date and time strings PostgreSQL takes, for the value rules (value-rules.ts): the ISO 8601
 * forms producers send, checked against the calendar and PostgreSQL's ranges, so that
 * `2024-02-30T25:61:00Z` or `yesterday-ish` is refused before a batch is acknowledged instead of
 * blocking its stream when COPY meets it.
 *
 * Only ISO 8601 is taken, a strict subset of what PostgreSQL parses: its other forms depend on
 * the server's DateStyle (`1/8/1999`), or are evaluated when the batch commits rather than when it
 * was sent (`now`, `today`, `yesterday`), or name time zones whose database may differ between
 * PostgreSQL and Node. Accepted, as PostgreSQL reads them:
 *   date         YYYY-MM-DD (4 to 7 digit year), optionally followed by a time as below (ignored)
 *   timestamp    YYYY-MM-DD, then `T` or spaces and HH:MM[:SS[.fraction]], then an optional zone:
 *                `Z`, `UTC`, `GMT` or an offset ±H[H][[:]MM[[:]SS]] up to ±15:59:59 (a timestamp
 *                without time zone ignores it, as PostgreSQL does); ` BC`/` AD` at the end
 *   time, timetz HH:MM[:SS[.fraction]] and an optional zone as above
 *   date, timestamp, timestamptz also `infinity` and `-infinity` (any case)
 * Hours 0 to 24 (24 only as 24:00:00), seconds 0 to 60 (a leap second), any number of fraction
 * digits (PostgreSQL rounds to microseconds); days as the month and leap year allow (proleptic
 * Gregorian: 1 BC is a leap year). Ranges: dates 4714-11-24 BC to 5874897-12-31, timestamps to
 * 294276-12-31 (the bound is checked on the date as written, before any zone offset).
 */

const DATE = '(\\d{4,7})-(\\d{1,2})-(\\d{1,2})';
const TIME = '(\\d{1,2}):(\\d{2})(?::(\\d{2})(?:\\.(\\d*))?)?';
const ZONE = '\\s*(?:z|utc|gmt|[+-](\\d{1,2})(?::?(\\d{2})(?::?(\\d{2}))?)?)';
const ERA = '(?:\\s+(bc|ad))?';

/** Groups: 1-3 date, 4-7 time, 8-10 zone offset, 11 era. */
const DATE_TIME = new RegExp(`^\\s*${DATE}(?:(?:t|\\s+)${TIME}(?:${ZONE})?)?${ERA}\\s*$`, 'i');
/** Groups: 1-4 time, 5-7 zone offset. */
const TIME_OF_DAY = new RegExp(`^\\s*${TIME}(?:${ZONE})?\\s*$`, 'i');
const INFINITY = /^\s*[-]?infinity\s*$/i;

const LAST_TIMESTAMP_YEAR = 294276;
const LAST_DATE_YEAR = 5874897;
const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

export type DateTimeKind = 'date' | 'timestamp' | 'time';

/** Why PostgreSQL would refuse `text` as a value of this kind, or undefined. */
export function dateTimeProblem(kind: DateTimeKind, text: string): string | undefined {
  if (kind === 'time') {
    const m = TIME_OF_DAY.exec(text);
    if (!m) return `is not a time of day (HH:MM[:SS[.ffffff]] and an optional zone), got ${quote(text)}`;
    return timeProblem(m[1], m[2], m[3], m[4], text) ?? zoneProblem(m[5], m[6], m[7], text);
  }
  if (INFINITY.test(text)) return undefined;
  const m = DATE_TIME.exec(text);
  if (!m) {
    const form = kind === 'date' ? 'YYYY-MM-DD' : 'YYYY-MM-DD[THH:MM[:SS[.ffffff]]][zone]';
    return `is not an ISO 8601 ${kind} (${form}, or infinity/-infinity), got ${quote(text)}`;
  }
  const bc = m[11]?.toLowerCase() === 'bc';
  return (
    calendarProblem(kind, Number(m[1]), Number(m[2]), Number(m[3]), bc, text) ??
    (m[4] === undefined ? undefined : timeProblem(m[4], m[5], m[6], m[7], text)) ??
    zoneProblem(m[8], m[9], m[10], text)
  );
}

function calendarProblem(
  kind: DateTimeKind,
  year: number,
  month: number,
  day: number,
  bc: boolean,
  text: string,
): string | undefined {
  if (year === 0) return `has year 0, which does not exist (1 BC is followed by 1 AD), got ${quote(text)}`;
  if (month < 1 || month > 12) return `has month ${month}, not 1 to 12, got ${quote(text)}`;
  const astronomical = bc ? 1 - year : year;
  const leap = astronomical % 4 === 0 && (astronomical % 100 !== 0 || astronomical % 400 === 0);
  const days = month === 2 && leap ? 29 : (DAYS_IN_MONTH[month - 1] as number);
  if (day < 1 || day > days) return `has day ${day}, but that month has ${days} days, got ${quote(text)}`;
  const last = kind === 'date' ? LAST_DATE_YEAR : LAST_TIMESTAMP_YEAR;
  const tooEarly = bc && (year > 4714 || (year === 4714 && (month < 11 || (month === 11 && day < 24))));
  if (tooEarly || (!bc && year > last)) {
    return `is out of range for a ${kind} (4714-11-24 BC to ${last}-12-31), got ${quote(text)}`;
  }
  return undefined;
}

function timeProblem(
  hours: string | undefined,
  minutes: string | undefined,
  seconds: string | undefined,
  fraction: string | undefined,
  text: string,
): string | undefined {
  const h = Number(hours);
  const m = Number(minutes);
  const s = Number(seconds ?? 0);
  const pastMidnight = h === 24 && (m > 0 || s > 0 || /[1-9]/.test(fraction ?? ''));
  if (h > 24 || m > 59 || s > 60 || pastMidnight) {
    return `has a time of day out of range (00:00:00 to 24:00:00, seconds up to 60), got ${quote(text)}`;
  }
  return undefined;
}

function zoneProblem(
  hours: string | undefined,
  minutes: string | undefined,
  seconds: string | undefined,
  text: string,
): string | undefined {
  if (hours === undefined) return undefined;
  if (Number(hours) > 15 || Number(minutes ?? 0) > 59 || Number(seconds ?? 0) > 59)
    return `has a time zone offset out of range (up to ±15:59:59), got ${quote(text)}`;
  return undefined;
}

function quote(text: string): string {
  return JSON.stringify(text.length > 60 ? `${text.slice(0, 60)}…` : text);
}
