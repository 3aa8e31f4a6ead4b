import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import YAML from 'yaml';
import { checkCommand } from '../../src/cli/check.ts';
import { UserError } from '../../src/cli/command.ts';
import { SpecError } from '../../src/spec/errors.ts';
import { loadSpec } from '../../src/spec/load.ts';
import { layerTable } from '../../src/spec/table.ts';
import { resolve } from './helpers.ts';

/** Runs `strata check` with argv, returning its exit code and everything it printed. */
async function check(argv: string[]): Promise<{ code: number; out: string }> {
  const lines: string[] = [];
  const log = vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => {
    lines.push(args.join(' '));
  });
  try {
    return { code: await checkCommand.run(argv), out: lines.join('\n') };
  } finally {
    log.mockRestore();
  }
}

async function rejection(argv: string[]): Promise<Error> {
  const log = vi.spyOn(console, 'log').mockImplementation(() => {});
  try {
    await checkCommand.run(argv);
  } catch (e) {
    return e as Error;
  } finally {
    log.mockRestore();
  }
  expect.fail('expected strata check to throw');
}

afterEach(() => vi.restoreAllMocks());

describe('layerTable', () => {
  it('lists every layer with its mixer and ffn', () => {
    expect(layerTable(loadSpec('specs/tiny-hybrid.strata'))).toBe(
      [
        'layer  mixer   kind       dims                                   ffn   kind        hidden',
        '    0  local   attention  heads 4, kv 1, head_dim 16, window 32  mlp   swiglu         128',
        '    1  local   attention  heads 4, kv 1, head_dim 16, window 32  wide  mlp(relu2)     256',
        '    2  global  attention  heads 4, kv 2, head_dim 16             mlp   swiglu         128',
        '    3  local   attention  heads 4, kv 1, head_dim 16, window 64  wide  mlp(relu2)     256',
        '    4  local   attention  heads 4, kv 1, head_dim 16, window 32  mlp   swiglu         128',
        '    5  global  attention  heads 4, kv 2, head_dim 16             wide  mlp(relu2)     256',
      ].join('\n'),
    );
  });

  it('shows what sets a layer apart: no rope, partial rotary, softcap, bidirectional, no ffn', () => {
    const m = resolve(
      'mixer a = attention(heads: 4, rope: none, softcap: 50, causal: false)\nmixer b = attention(heads: 4, rope: rope(rotary_dim: 8))\nffn g = geglu(hidden: 8)\nffn u = mlp(hidden: 8, act: gelu, gated: true, bias: true)\nlayers [a, b, a] with ffn [g, none, u]',
    );
    expect(layerTable(m).split('\n').slice(1)).toEqual([
      '    0  a      attention  heads 4, kv 4, head_dim 16, no rope, softcap 50, bidirectional  g    geglu       8',
      '    1  b      attention  heads 4, kv 4, head_dim 16, rotary 8                            -    -           -',
      '    2  a      attention  heads 4, kv 4, head_dim 16, no rope, softcap 50, bidirectional  u    geglu       8',
    ]);
  });
});

describe('strata check', () => {
  it('prints the layer table and a summary', async () => {
    const { code, out } = await check(['specs/llama-3.2-1b.strata']);
    expect(code).toBe(0);
    const lines = out.split('\n');
    expect(lines[0]).toMatch(/^layer {2}mixer {2}kind {7}dims/);
    expect(
      lines.filter((l) =>
        /^ +\d+ {2}attn {3}attention {2}heads 32, kv 8, head_dim 64 {2}mlp {2}swiglu {4}8192$/.test(
          l,
        ),
      ),
    ).toHaveLength(16);
    expect(lines.slice(-2)).toEqual([
      'llama-3.2-1b: 16 layers (16 attn), dim 2048, vocab 128256',
      'max_context 131072, norm rms(eps 1e-5), tied embeddings, 1.24B parameters',
    ]);
  });

  it('summarises a hybrid by mixer', async () => {
    const { out } = await check(['specs/tiny-hybrid.strata']);
    expect(out).toContain('tiny-hybrid: 6 layers (4 local, 2 global), dim 64, vocab 256');
  });

  it('prints the ModelIR with --json', async () => {
    const { code, out } = await check(['--json', 'specs/tiny-llama.strata']);
    expect(code).toBe(0);
    expect(JSON.parse(out)).toEqual(loadSpec('specs/tiny-llama.strata'));
  });

  it('checks YAML and JSON specs too', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'strata-check-'));
    const model = loadSpec('specs/tiny-llama.strata');
    writeFileSync(join(dir, 'm.yaml'), YAML.stringify(model));
    writeFileSync(join(dir, 'm.json'), JSON.stringify(model));
    const fromYaml = await check([join(dir, 'm.yaml')]);
    const fromJson = await check([join(dir, 'm.json')]);
    const fromStrata = await check(['specs/tiny-llama.strata']);
    expect(fromYaml).toEqual(fromStrata);
    expect(fromJson).toEqual(fromStrata);
  });

  it('throws the formatted SpecError for a bad spec', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'strata-check-'));
    const path = join(dir, 'bad.strata');
    writeFileSync(
      path,
      'model "m" {\n  vocab 8\n  dim 8\n  max_context 8\n  norm rms(eps: 1e-5)\n  mixer a = mamba1(d_stat: 16)\n  layers 2 x a\n}\n',
    );
    const e = await rejection([path]);
    expect(e).toBeInstanceOf(SpecError);
    expect(e.message).toBe(
      [
        `${path}:6:20: error: unknown parameter 'd_stat' for mamba1(...), did you mean 'd_state'?`,
        ' 6 |   mixer a = mamba1(d_stat: 16)',
        '   |                    ^^^^^^',
      ].join('\n'),
    );
  });

  it('throws a SpecError for a missing file', async () => {
    const e = await rejection(['specs/nope.strata']);
    expect(e).toBeInstanceOf(SpecError);
    expect(e.message).toBe('specs/nope.strata: error: cannot read spec: no such file');
  });

  it('rejects bad usage with a UserError', async () => {
    const none = await rejection([]);
    expect(none).toBeInstanceOf(UserError);
    expect(none.message).toMatch(
      /^strata check: which spec\?\n\nusage: strata check <spec> \[--json\]/,
    );
    const option = await rejection(['--yaml', 'specs/tiny-llama.strata']);
    expect(option).toBeInstanceOf(UserError);
    expect(option.message).toMatch(/^strata check: Unknown option '--yaml'/);
    const extra = await rejection(['a.strata', 'b.strata']);
    expect(extra.message).toBe("strata check: unexpected argument 'b.strata'");
  });
});
