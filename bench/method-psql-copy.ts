/** The physical limit: `psql \copy` of the same rows from a file generated beforehand (only psql is timed). */

import { createEmptyTable, psqlArgs, tableOf } from './db.ts';
import { COLUMN_NAMES } from './generate-rows.ts';
import type { CommandMethod } from './method.ts';

const method: CommandMethod = {
  id: 'psql-copy',
  label: 'psql \\copy from file',
  kind: 'command',
  loadsCopyFile: true,
  setup: createEmptyTable,
  command: (ctx) => [
    'psql',
    psqlArgs(ctx.databaseUrl, [
      '-c',
      `\\copy ${tableOf(ctx)} (${COLUMN_NAMES.join(', ')}) FROM '${ctx.copyFile}'`,
    ]),
  ],
};
export default method;
