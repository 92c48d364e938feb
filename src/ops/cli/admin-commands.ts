import type { Command } from 'commander';
import { stringifyJson } from '../../ingest/exact-json.ts';
import { StreamAdmin, type StreamStatus } from '../../queue/admin.ts';
import { connectionConfigSchema, parseConfig } from '../config.ts';
import { addSettings, CONNECTION_SETTINGS, readSettings, runCommand, sourcesOf } from './common.ts';

function adminFrom(flags: Record<string, unknown>): StreamAdmin {
  const config = parseConfig(
    connectionConfigSchema,
    readSettings(flags, CONNECTION_SETTINGS),
    sourcesOf(CONNECTION_SETTINGS),
  );
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
        if (statuses.some((s) => s.blocked)) process.exitCode = 3;
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
}

function formatStatuses(statuses: readonly StreamStatus[]): string {
  if (statuses.length === 0) return 'No streams yet.\n';
  return statuses
    .map((s) => {
      const lines = [
        `${s.stream}: ${s.blocked ? 'BLOCKED' : s.pending > 0 ? 'catching up' : 'up to date'}`,
        `  committed seq ${s.committedSeq}, enqueued seq ${s.enqueuedSeq}, pending ${s.pending} (${s.pendingBytes} bytes)`,
        `  high watermark ${stringifyJson(s.highWatermark)}, last commit ${s.lastCommitAt?.toISOString() ?? 'never'}`,
      ];
      if (s.blocked)
        lines.push(
          `  blocked at batch ${s.blocked.seq} since ${s.blocked.since.toISOString()}: ${s.blocked.reason}`,
        );
      return lines.join('\n');
    })
    .join('\n\n')
    .concat('\n');
}
