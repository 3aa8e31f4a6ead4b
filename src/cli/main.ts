#!/usr/bin/env node
import type { Command } from './command.ts';
import { UserError } from './command.ts';
import { commands } from './commands.ts';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { didYouMean } from '../../grammar/suggest.ts';

/**
 * The package's version: from the package.json above this file, found by walking up (a
 * checkout runs src/cli/main.ts, the installed package dist/src/cli/main.js).
 */
export function version(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const p = join(dir, 'package.json');
    if (existsSync(p)) {
      const pkg = JSON.parse(readFileSync(p, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === '@strata-llm/strata' && pkg.version) return pkg.version;
    }
    const up = dirname(dir);
    if (up === dir) return 'unknown';
    dir = up;
  }
}

/** The options a command documents (its usage text names each as --name). */
function documentedOptions(cmd: Command): string[] {
  return [...new Set(cmd.usage.match(/--[a-z][a-z0-9-]*/g) ?? [])];
}

/** node:util parseArgs' unknown-option error, with the documented option it most resembles. */
function withSuggestion(cmd: Command, message: string): string {
  const m = /Unknown option '(-{1,2}[^'=]+)/.exec(message);
  if (!m) return message;
  const hint = didYouMean(m[1], documentedOptions(cmd));
  return `strata ${cmd.name}: unknown option '${m[1]}'${hint}\nRun 'strata help ${cmd.name}' for its options.`;
}

function topHelp(): string {
  const rows = commands.map((c) => `  ${c.name.padEnd(9)} ${c.summary}`).join('\n');
  return `strata: compile LLM architecture specs to WebGPU programs\n\nusage: strata <command> [options]\n\ncommands:\n${rows}\n\nRun 'strata help <command>' (or 'strata <command> --help') for a command's options;\n'strata --version' prints the version.`;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === '--version' || name === '-V' || name === 'version') {
    console.log(`strata ${version()}`);
    return 0;
  }
  if (name === 'help' && rest.length > 0) {
    const about = commands.find((c) => c.name === rest[0]);
    if (!about) {
      const hint = didYouMean(
        rest[0],
        commands.map((c) => c.name),
      );
      console.error(`strata help: unknown command '${rest[0]}'${hint}\n\n${topHelp()}`);
      return 2;
    }
    console.log(`${about.summary}\n\n${about.usage}`);
    return 0;
  }
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(topHelp());
    return name ? 0 : 1;
  }
  const cmd: Command | undefined = commands.find((c) => c.name === name);
  if (!cmd) {
    const hint = didYouMean(
      name,
      commands.map((c) => c.name),
    );
    console.error(`strata: unknown command '${name}'${hint}\n\n${topHelp()}`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(`${cmd.summary}\n\n${cmd.usage}`);
    return 0;
  }
  try {
    return await cmd.run(rest);
  } catch (e) {
    // Bad specs, weights, bundles and options all surface as errors with a message that names
    // the place; the stack is only for developers (STRATA_DEBUG=1).
    if (!(e instanceof Error)) throw e;
    if (process.env.STRATA_DEBUG === '1') console.error(e.stack);
    else if (/Unknown option '/.test(e.message)) console.error(withSuggestion(cmd, e.message));
    else if (e instanceof UserError || e.name === 'SpecError') console.error(e.message);
    else console.error(`strata ${name}: ${e.message}`);
    return 1;
  }
}

/**
 * Resolves once everything written to `stream` so far has been handed to the OS. A pipe's
 * writes are asynchronous, and process.exit() drops what is still queued (output cut at 64 KiB).
 */
function drained(stream: NodeJS.WriteStream): Promise<void> {
  return new Promise((done) => {
    if (stream.destroyed || !stream.writable) return done();
    stream.write('', () => done());
  });
}

async function exitAfterOutput(code: number): Promise<never> {
  process.exitCode = code;
  await Promise.all([drained(process.stdout), drained(process.stderr)]);
  // Exit explicitly all the same: a GPU device may hold the event loop open.
  process.exit(code);
}

/**
 * Run the CLI on this process's arguments and exit with its status. The entry points call it:
 * src/cli/bin.ts (the installed package's `strata`) and bin/strata.js (tsx, in a checkout).
 */
export function runCli(): void {
  // A reader that goes away early (`| head`) is not an error of ours.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
  main(process.argv.slice(2)).then(exitAfterOutput, (e: unknown) => {
    console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
    return exitAfterOutput(70);
  });
}

const isEntry = process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/\\/g, '/'));
// `tsx src/cli/main.ts` (npm run strata) runs this file directly.
if (isEntry) runCli();
