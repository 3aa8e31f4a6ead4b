import type { Command } from './command.ts';
import { checkCommand } from './check.ts';
import { compileCommand } from './compile-cmd.ts';
import { runCommand } from './run-cmd.ts';
import { inspectCommand } from './inspect-cmd.ts';
import { doctorCommand } from './doctor.ts';
import { importCommand } from './import-cmd.ts';
import { exploreCommand } from './explore-cmd.ts';
import { exportCommand } from './export-cmd.ts';
import { serveCommand } from './serve-cmd.ts';

export const commands: Command[] = [
  checkCommand,
  compileCommand,
  runCommand,
  inspectCommand,
  importCommand,
  exploreCommand,
  exportCommand,
  serveCommand,
  doctorCommand,
];
