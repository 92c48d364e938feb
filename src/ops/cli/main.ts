#!/usr/bin/env node
/** `pg-bulk-ingest`: the command line. Each command lives in its own file (see program.ts). */
import { buildProgram } from './program.ts';

await buildProgram().parseAsync(process.argv);
