/** `strata export`: --hf to stdout or DIR/config.json, --megatron flags, refusals as user errors. */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cli } from './run-cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'strata-export-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('strata export', () => {
  it('writes DIR/config.json, and refuses to replace it without --force', async () => {
    const out = join(dir, 'jamba');
    const r = await cli('export', 'specs/jamba-v0.1.strata', '--hf', '-o', out);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/wrote .*config\.json \(jamba, 32 layers\)/);
    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    expect(config).toMatchObject({
      model_type: 'jamba',
      attn_layer_period: 8,
      attn_layer_offset: 4,
    });
    const again = await cli('export', 'specs/jamba-v0.1.strata', '--hf', '-o', out);
    expect(again.code).not.toBe(0);
    expect(again.err).toMatch(/exists \(--force replaces it\)/);
    expect(
      (await cli('export', 'specs/jamba-v0.1.strata', '--hf', '-o', out, '--force')).code,
    ).toBe(0);
  });

  it('prints the config without -o, as --type asks', async () => {
    const r = await cli('export', 'specs/nemotron-h-8b.strata', '--hf', '--type', 'nemotron_h');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out).model_type).toBe('nemotron_h');
  });

  it('names what a type cannot express', async () => {
    const r = await cli('export', 'specs/jamba-v0.1.strata', '--hf', '--type', 'llama');
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(/jamba-v0.1.strata: llama cannot express layer 0: the mamba1 mixer/);
  });

  it('--megatron prints the pattern and flags', async () => {
    const r = await cli('export', 'specs/nemotron-h-8b.strata', '--megatron');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^--num-layers 52 \\\n--hybrid-layer-pattern 'M-M-M-M\*-/);
    const bad = await cli('export', 'specs/jamba-v0.1.strata', '--megatron');
    expect(bad.err).toMatch(/Megatron-LM cannot express layer 0: the mamba1 mixer/);
  });

  it('asks for exactly one of --hf and --megatron', async () => {
    const r = await cli('export', 'specs/tiny-llama.strata');
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(/give one of --hf and --megatron/);
  });
});
