/** Runs the CLI's main() in this process, capturing what it prints. */
import { vi } from 'vitest';
import { spawn } from 'node:child_process';
import { main } from '../../src/cli/main.ts';

export interface CliResult {
  code: number;
  out: string;
  err: string;
}

/**
 * stdout and stderr as the user would see them: console lines end in a newline, and raw writes
 * (streamed tokens, errors printed mid-run) are kept byte for byte.
 */
export async function cli(...args: string[]): Promise<CliResult> {
  const out: string[] = [];
  const err: string[] = [];
  const line =
    (into: string[]) =>
    (...a: unknown[]) =>
      void into.push(`${a.join(' ')}\n`);
  const raw = (into: string[]) => (s: string | Uint8Array) => {
    into.push(String(s));
    return true;
  };
  const spies = [
    vi.spyOn(console, 'log').mockImplementation(line(out)),
    vi.spyOn(console, 'error').mockImplementation(line(err)),
    vi.spyOn(process.stdout, 'write').mockImplementation(raw(out)),
    vi.spyOn(process.stderr, 'write').mockImplementation(raw(err)),
  ];
  try {
    const code = await main(args);
    return { code, out: out.join(''), err: err.join('') };
  } finally {
    for (const s of spies) s.mockRestore();
  }
}

/**
 * A reader that holds off until the pipe is full (64 KiB waiting in it), then a second more, then
 * reads everything: a writer that exits with output still queued has lost it by then. Needs python3
 * (for FIONREAD).
 */
const SLOW_READER = `
import fcntl, select, struct, sys, termios, time
deadline = time.time() + 30
while time.time() < deadline:
    waiting = struct.unpack("i", fcntl.ioctl(0, termios.FIONREAD, b"0000"))[0]
    readable = select.select([0], [], [], 0)[0]
    if waiting >= 65536 or (readable and waiting == 0):  # full, or the writer closed it
        break
    time.sleep(0.05)
time.sleep(1)
sys.stdout.buffer.write(sys.stdin.buffer.read())
`;

/**
 * Runs the CLI as its own process (`node --import tsx src/cli/main.ts`) with stdout into a real
 * pipe, as `strata … | cat` would (Node's own child stdio is a socket pair, which holds more),
 * read by SLOW_READER. The exit code is the CLI's (pipefail).
 */
export function spawnCliPiped(
  ...args: string[]
): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  const script = `set -o pipefail; "$0" --import tsx src/cli/main.ts "$@" | python3 -c '${SLOW_READER}'`;
  return new Promise((done, fail) => {
    const child = spawn('bash', ['-c', script, process.execPath, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => (stderr += String(b)));
    child.on('error', fail);
    child.on('close', (code) => done({ code, stdout: Buffer.concat(out), stderr }));
  });
}
