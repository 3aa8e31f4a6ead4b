/** Runs the CLI's main() in this process, capturing what it prints. */
import { vi } from 'vitest';
import { spawn } from 'node:child_process';
import { main } from '../../src/cli/main.ts';

export interface CliResult {
  code: number;
  out: string;
  err: string;
}

export async function cli(...args: string[]): Promise<CliResult> {
  const out: string[] = [];
  const err: string[] = [];
  const log = vi
    .spyOn(console, 'log')
    .mockImplementation((...a: unknown[]) => void out.push(a.join(' ')));
  const error = vi
    .spyOn(console, 'error')
    .mockImplementation((...a: unknown[]) => void err.push(a.join(' ')));
  const write = vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => {
    out.push(String(s));
    return true;
  });
  try {
    const code = await main(args);
    return { code, out: out.join('\n'), err: err.join('\n') };
  } finally {
    log.mockRestore();
    error.mockRestore();
    write.mockRestore();
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
