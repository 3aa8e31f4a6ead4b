/** `--precision` and `--kv` on the commands that compile, and what they refuse. */
import { describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli } from './run-cli.ts';

const SPEC = 'specs/tiny-llama.strata';
const inspect = async (...args: string[]) =>
  JSON.parse((await cli('inspect', SPEC, '--json', '--target', 'baseline', ...args)).out);

describe('--precision and --kv', () => {
  it('inspect counts stored weight bytes by type and KV bytes by the cache type', async () => {
    const f32 = await inspect('--precision', 'f32');
    const q4 = await inspect('--precision', 'q4', '--kv', 'f16');
    expect(f32.precision).toBe('f32');
    expect(Object.keys(f32.parameterBytesByType)).toEqual(['f32']);
    expect(q4.precision).toBe('q4');
    expect(q4.parameterBytesByType.q4).toBeGreaterThan(0);
    expect(q4.parameterBytes).toBeLessThan(f32.parameterBytes / 4);
    expect(q4.kvBytesPerToken).toBe(f32.kvBytesPerToken / 2);
    // Without a device with shader-f16 (the baseline target has none), weights default to f32.
    expect((await inspect()).precision).toBe('f32');
  });

  it('refuses unknown values, naming the option and the choices', async () => {
    const bad = await cli('inspect', SPEC, '--target', 'baseline', '--precision', 'q3');
    expect(bad.code).not.toBe(0);
    expect(bad.err).toMatch(/--precision must be one of f32, f16, q8, q4, got 'q3'/);
    const kv = await cli('inspect', SPEC, '--target', 'baseline', '--kv', 'bf16');
    expect(kv.err).toMatch(/--kv must be f32 or f16, got 'bf16'/);
  });

  it('a compiled q8 bundle runs; run refuses compile options given with it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'strata-precision-cli-'));
    try {
      const out = join(dir, 'b');
      const c = await cli('compile', SPEC, '-o', out, '--precision', 'q8', '--kv', 'f16');
      expect(c.code, c.err).toBe(0);
      const r = await cli('run', out, '--prompt-ids', '1,2,3', '--max-tokens', '4', '--ids');
      expect(r.code, r.err).toBe(0);
      const again = await cli('run', out, '--prompt-ids', '1,2', '--precision', 'q4');
      expect(again.code).not.toBe(0);
      expect(again.err).toMatch(/--precision: compile options, but .* is a compiled bundle/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('inspect --browser: each precision against WebGPU default limits and a 4 GiB tab', async () => {
    const tiny = await inspect('--browser');
    expect(tiny.browser.map((b: { precision: string }) => b.precision)).toEqual([
      'f32',
      'f16',
      'q8',
      'q4',
    ]);
    for (const b of tiny.browser) {
      expect(b.error).toBeNull();
      expect(b.fitsTab && b.fitsBuffer).toBe(true);
      // The same stored bytes inspect reports when compiled at that precision.
      expect(b.weightBytes).toBe((await inspect('--precision', b.precision)).parameterBytes);
    }
    // Llama-3.2-1B: 4.6 GiB of f32 weights are over the tab; f16 and below fit.
    const big = JSON.parse(
      (
        await cli(
          'inspect',
          'specs/llama-3.2-1b.strata',
          '--json',
          '--target',
          'baseline',
          '--browser',
        )
      ).out,
    );
    const fits = Object.fromEntries(
      big.browser.map((b: { precision: string; fitsTab: boolean }) => [b.precision, b.fitsTab]),
    );
    expect(fits).toEqual({ f32: false, f16: true, q8: true, q4: true });
  });
});
