/**
 * The `pg-bulk-ingest` command tree, built without running it: main.ts parses the command line
 * with it, and scripts/settings-doc.ts generates docs/operations.md's settings tables from it.
 */
import { Command } from 'commander';
import { registerAdminCommands } from './admin-commands.ts';
import { registerDemoCommand } from './demo-command.ts';
import { registerEnqueueCommand } from './enqueue-command.ts';
import { registerGatewayCommand } from './gateway-command.ts';
import { registerWorkerCommand } from './worker-command.ts';

export function buildProgram(): Command {
  const program = new Command('pg-bulk-ingest')
    .description('Batches into PostgreSQL at COPY speed, in order and exactly once, through Redis')
    .showHelpAfterError();
  registerWorkerCommand(program);
  registerAdminCommands(program);
  registerEnqueueCommand(program);
  registerGatewayCommand(program);
  registerDemoCommand(program);
  return program;
}
