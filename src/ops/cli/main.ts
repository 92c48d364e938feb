#!/usr/bin/env node
/** `pg-bulk-ingest`: the command line. Each command lives in its own file. */
import { Command } from 'commander';
import { registerAdminCommands } from './admin-commands.ts';
import { registerDemoCommand } from './demo-command.ts';
import { registerEnqueueCommand } from './enqueue-command.ts';
import { registerGatewayCommand } from './gateway-command.ts';
import { registerWorkerCommand } from './worker-command.ts';

const program = new Command('pg-bulk-ingest')
  .description('Batches into PostgreSQL at COPY speed, in order and exactly once, through Redis')
  .showHelpAfterError();

registerWorkerCommand(program);
registerAdminCommands(program);
registerEnqueueCommand(program);
registerGatewayCommand(program);
registerDemoCommand(program);

await program.parseAsync(process.argv);
