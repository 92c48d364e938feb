import { type Command, InvalidArgumentError } from 'commander';
import { PgBulkIngestError } from '../../errors.ts';
import { stringifyJson } from '../../ingest/exact-json.ts';
import { Upsert } from '../../ingest/options.ts';
import { StreamAdmin, type StreamStatus } from '../../queue/admin.ts';
import { DEFAULT_HISTORY_LIMIT, type LedgerEntry } from '../../queue/ledger.ts';
import type { RejectedRowRecord } from '../../queue/replay.ts';
import { connectionConfigSchema } from '../config.ts';
import { addSettings, CONNECTION_SETTINGS, configFrom, runCommand } from './common.ts';

function adminFrom(flags: Record<string, unknown>): StreamAdmin {
  const config = configFrom(connectionConfigSchema, CONNECTION_SETTINGS, flags);
  return new StreamAdmin({
    databaseUrl: config.databaseUrl,
    redis: config.redisUrl,
    queueName: config.queueName,
    prefix: config.prefix,
  });
}

async function withAdmin(flags: Record<string, unknown>, body: (admin: StreamAdmin) => Promise<void>) {
  const admin = adminFrom(flags);
  try {
    await body(admin);
  } finally {
    await admin.close();
  }
}

export function registerAdminCommands(program: Command): void {
  addSettings(
    program
      .command('status [stream]')
      .description(
        'Show each stream: committed and enqueued sequence, pending batches, high watermark, last commit, and why it is blocked',
      )
      .option('--json', 'print JSON'),
    CONNECTION_SETTINGS,
  ).action((stream: string | undefined, flags: Record<string, unknown>) =>
    runCommand(() =>
      withAdmin(flags, async (admin) => {
        const statuses = await admin.status(stream);
        process.stdout.write(
          flags.json ? `${stringifyJson(statuses, { indent: 2 })}\n` : formatStatuses(statuses),
        );
        if (statuses.some((s) => s.blocked || s.error)) process.exitCode = 3;
      }),
    ),
  );

  addSettings(
    program
      .command('skip <stream>')
      .description(
        'Move a stream past its next (blocked) batch without applying it; it is recorded in bulk_ingest.skipped_batches',
      )
      .option('--seq <n>', 'the batch to skip; refused unless it is the next one', (v) =>
        Number.parseInt(v, 10),
      )
      .option('--reason <text>', 'why (kept with the record)'),
    CONNECTION_SETTINGS,
  ).action((stream: string, flags: Record<string, unknown>) =>
    runCommand(() =>
      withAdmin(flags, async (admin) => {
        const seq = await admin.skip(stream, {
          ...(typeof flags.seq === 'number' ? { seq: flags.seq } : {}),
          ...(typeof flags.reason === 'string' ? { reason: flags.reason } : {}),
        });
        process.stdout.write(`Skipped batch ${seq} of ${stream}\n`);
      }),
    ),
  );

  addSettings(
    program.command('retry <stream>').description('Unblock a stream and try its parked batch again'),
    CONNECTION_SETTINGS,
  ).action((stream: string, flags: Record<string, unknown>) =>
    runCommand(() =>
      withAdmin(flags, async (admin) => {
        await admin.retry(stream);
        process.stdout.write(`Retrying ${stream}\n`);
      }),
    ),
  );
  addSettings(
    program
      .command('history <stream>')
      .description(
        "Show the stream's last batches as the ledger bulk_ingest.batches records them, newest first: seq, outcome, when, batch id, rows per table, rejected rows, bytes, high watermark",
      )
      .option(
        '--limit <n>',
        `most batches shown (default ${DEFAULT_HISTORY_LIMIT})`,
        positiveInteger('--limit'),
      )
      .option('--json', 'print JSON'),
    CONNECTION_SETTINGS,
  ).action((stream: string, flags: Record<string, unknown>) =>
    runCommand(() =>
      withAdmin(flags, async (admin) => {
        const entries = await admin.history(stream, {
          ...(typeof flags.limit === 'number' ? { limit: flags.limit } : {}),
        });
        process.stdout.write(
          flags.json ? `${stringifyJson(entries, { indent: 2 })}\n` : formatHistory(stream, entries),
        );
      }),
    ),
  );

  addSettings(
    program
      .command('rewind <stream>')
      .description(
        "Set the stream's stored high watermark back to the one committed with batch N (from the ledger bulk_ingest.batches): in its table's comment, bulk_ingest.stream_state and Redis, so producers using HighWatermark.LATEST send again from there. Rows already in the tables stay: re-sending with an upsert is idempotent (plain inserts would write them twice). Refused while batches are pending or the stream is blocked, unless --force. Recorded in bulk_ingest.rewinds",
      )
      .requiredOption(
        '--to-seq <n>',
        'the batch whose high watermark to go back to',
        positiveInteger('--to-seq'),
      )
      .option(
        '--force',
        'rewind although batches are pending or the stream is blocked (they commit after it and move the high watermark on)',
      ),
    CONNECTION_SETTINGS,
  ).action((stream: string, flags: Record<string, unknown>) =>
    runCommand(() =>
      withAdmin(flags, async (admin) => {
        const r = await admin.rewind(stream, { toSeq: flags.toSeq as number, force: flags.force === true });
        process.stdout.write(
          `Rewound ${stream} to batch ${r.toSeq}: high watermark ${stringifyJson(r.highWatermark)} (was ${stringifyJson(r.previousHighWatermark)}); the next batch is ${r.committedSeq + 1}. Rows already in the tables stay.\n${r.forced ? `Forced: the stream ${r.note}.\n` : ''}`,
        );
      }),
    ),
  );

  addSettings(
    program
      .command('forget <stream>')
      .description(
        'Remove a finished stream: its keys in Redis and its committed state in bulk_ingest (the tables and their high watermark stay). Refused while batches are pending; the next batch under the name starts a new stream at seq 1',
      ),
    CONNECTION_SETTINGS,
  ).action((stream: string, flags: Record<string, unknown>) =>
    runCommand(() =>
      withAdmin(flags, async (admin) => {
        await admin.forget(stream);
        process.stdout.write(`Forgot ${stream}\n`);
      }),
    ),
  );

  addSettings(
    program
      .command('rejected [stream]')
      .description(
        'List the rows quarantined under BadRows.QUARANTINE (bulk_ingest.rejected_rows), oldest first: id, stream, batch, row, SQLSTATE, reason, values. Read-only',
      )
      .option('--json', 'print JSON'),
    CONNECTION_SETTINGS,
  ).action((stream: string | undefined, flags: Record<string, unknown>) =>
    runCommand(() =>
      withAdmin(flags, async (admin) => {
        const rows = await admin.rejected(stream);
        process.stdout.write(flags.json ? `${JSON.stringify(rows, null, 2)}\n` : formatRejected(rows));
      }),
    ),
  );
  addSettings(
    program
      .command('replay <stream>')
      .description(
        'Enqueue rejected rows of the stream, as they are in bulk_ingest.rejected_rows now (fix a value with UPDATE first), as one new batch at the end of the stream; their replayed_at is set when it commits, and a row refused again is quarantined again with a new id',
      )
      .option(
        '--ids <ids>',
        'comma-separated ids to replay (default: every row of the stream not replayed yet)',
        (v) => v.split(',').map((id) => Number(id.trim())),
      )
      .option(
        '--upsert <mode>',
        'off (a row whose key is already in the table is quarantined again) or if-primary-key (it replaces that row)',
        'off',
      ),
    CONNECTION_SETTINGS,
  ).action((stream: string, flags: Record<string, unknown>) =>
    runCommand(() =>
      withAdmin(flags, async (admin) => {
        const ids = Array.isArray(flags.ids) ? (flags.ids as number[]) : undefined;
        if (ids?.some((id) => !Number.isSafeInteger(id) || id < 1))
          throw new PgBulkIngestError(
            'INVALID_OPTIONS',
            `--ids: expected comma-separated ids, got "${ids.join(',')}"`,
          );
        const upsert = REPLAY_UPSERT[String(flags.upsert)];
        if (upsert === undefined)
          throw new PgBulkIngestError(
            'INVALID_OPTIONS',
            `--upsert: expected off or if-primary-key, got "${String(flags.upsert)}"`,
          );
        const result = await admin.replay(stream, { ...(ids ? { ids } : {}), upsert });
        process.stdout.write(
          result.seq === null
            ? `Nothing to replay on ${stream}\n`
            : `Enqueued rows ${result.ids.join(', ')} as batch ${result.seq} of ${stream}\n`,
        );
      }),
    ),
  );
}

/** A flag's value as an integer >= 1, or a usage error naming the flag. */
function positiveInteger(flag: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1)
      throw new InvalidArgumentError(`${flag} expects an integer >= 1, got ${JSON.stringify(value)}`);
    return n;
  };
}

function formatHistory(stream: string, entries: readonly LedgerEntry[]): string {
  if (entries.length === 0) return `No batches of ${stream} in the ledger.\n`;
  const header = [
    'seq',
    'outcome',
    'committed at',
    'batch id',
    'rows',
    'rejected',
    'bytes',
    'high watermark',
  ];
  const lines = entries.map((e) => [
    String(e.seq),
    e.outcome,
    e.committedAt.toISOString(),
    e.batchId ?? '-',
    Object.entries(e.rows)
      .map(([table, n]) => `${table}=${n}`)
      .join(' ') || '-',
    String(e.rejectedRows),
    e.bytes === null ? '-' : String(e.bytes),
    stringifyJson(e.highWatermark),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] as string).length)));
  return [header, ...lines]
    .map((cells) =>
      cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] as number))).join('  '),
    )
    .join('\n')
    .concat('\n');
}

const REPLAY_UPSERT: Readonly<Record<string, Upsert>> = {
  off: Upsert.OFF,
  'if-primary-key': Upsert.IF_PRIMARY_KEY,
};

function formatStatuses(statuses: readonly StreamStatus[]): string {
  if (statuses.length === 0) return 'No streams yet.\n';
  return statuses
    .map((s) => {
      const lines = [
        `${s.stream}: ${s.error ? 'UNREADABLE' : s.blocked ? 'BLOCKED' : s.retrying ? 'RETRYING' : s.pending > 0 ? 'catching up' : 'up to date'}`,
        `  committed seq ${s.committedSeq}, enqueued seq ${s.enqueuedSeq}, pending ${s.pending} (${s.pendingBytes} bytes)`,
        `  high watermark ${stringifyJson(s.highWatermark)}, last commit ${s.lastCommitAt?.toISOString() ?? 'never'}`,
      ];
      if (s.error) lines.push(`  ${s.error}`);
      if (s.retrying) lines.push(`  retrying since ${s.retrying.since.toISOString()}: ${s.retrying.reason}`);
      if (s.redisGap)
        lines.push(`  Redis lost data (found ${s.redisGap.at.toISOString()}): ${s.redisGap.description}`);
      if (s.blocked)
        lines.push(
          `  blocked at batch ${s.blocked.seq} since ${s.blocked.since.toISOString()}: ${s.blocked.reason}`,
        );
      return lines.join('\n');
    })
    .join('\n\n')
    .concat('\n');
}

function formatRejected(rows: readonly RejectedRowRecord[]): string {
  if (rows.length === 0) return 'No rejected rows\n';
  return rows
    .map(
      (r) =>
        `${r.id}\t${r.stream}\tbatch ${r.seq ?? '-'}\trow ${r.rowNumber}\t${r.tableSchema}.${r.tableName}\t${r.sqlState ?? '-'}\t${r.replayedAt ? `replayed ${r.replayedAt.toISOString()}` : 'not replayed'}\t${r.message}\t${JSON.stringify(r.row)}\n`,
    )
    .join('');
}
