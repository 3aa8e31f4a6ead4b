/**
 * The CLI as its own process with stdout on a pipe: everything it prints arrives, past the
 * 64 KiB a pipe holds (process.exit used to drop what was still queued).
 */
import { describe, expect, it } from 'vitest';
import { cli, spawnCliPiped } from './run-cli.ts';

describe('stdout through a pipe', () => {
  it('delivers the whole of a large `check --json`', async () => {
    const spec = 'specs/deepseek-v3.strata';
    const piped = await spawnCliPiped('check', spec, '--json');
    expect(piped.code, piped.stderr).toBe(0);
    expect(piped.stdout.length).toBeGreaterThan(64 * 1024);
    const inProcess = await cli('check', spec, '--json');
    expect(piped.stdout.toString('utf8').trim()).toBe(inProcess.out.trim());
    expect(() => JSON.parse(piped.stdout.toString('utf8'))).not.toThrow();
  }, 60_000);

  it('still exits with the command’s code', async () => {
    const r = await spawnCliPiped('check', 'specs/no-such.strata');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/no-such\.strata/);
  }, 60_000);
});
