#!/usr/bin/env node
import type { Command } from './command.ts';
import { UserError } from './command.ts';
import { commands } from './commands.ts';

function topHelp(): string {
  const rows = commands.map((c) => `  ${c.name.padEnd(9)} ${c.summary}`).join('\n');
  return `strata: compile LLM architecture specs to WebGPU programs\n\nusage: strata <command> [options]\n\ncommands:\n${rows}\n\nRun 'strata <command> --help' for a command's options.`;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(topHelp());
    return name ? 0 : 1;
  }
  const cmd: Command | undefined = commands.find((c) => c.name === name);
  if (!cmd) {
    console.error(`strata: unknown command '${name}'\n\n${topHelp()}`);
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
    else if (e instanceof UserError || e.name === 'SpecError') console.error(e.message);
    else console.error(`strata ${name}: ${e.message}`);
    return 1;
  }
}

const isEntry = process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/\\/g, '/'));
if (isEntry || process.env.STRATA_CLI === '1') {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: unknown) => {
      console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
      process.exit(70);
    },
  );
}
