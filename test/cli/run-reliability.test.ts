/**
 * `strata run` never answers silently wrong: bad prompt ids and runs that do not fit in the
 * KV cache are refused before the GPU is touched; non-finite logits and WebGPU errors end the
 * run on stderr with a non-zero status, stdout holding only the tokens that were good.
 * A tiny bundle (vocab 64, dim 32, 2 layers, capacity 32) keeps SwiftShader fast.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli } from './run-cli.ts';
import { checkRunFits, parsePromptIds } from '../../src/cli/run-prompt.ts';

const SPEC = `model "tiny-rel" {
  vocab 64
  dim 32
  max_context 64
  norm rms(eps: 1e-5)
  tie_embeddings false

  mixer attn = attention(heads: 2, kv_heads: 1)
  ffn mlp = swiglu(hidden: 48)

  layers 2 x attn with ffn mlp
}
`;

let dir: string;
let bundle: string;

/**
 * The CLI in a child process whose `import('webgpu')` fails (a module resolve hook), so any
 * attempt to acquire the GPU shows in stderr; `gpu: true` runs it normally.
 */
function spawnCli(args: string[], gpu = false): { code: number | null; out: string; err: string } {
  const hook = gpu ? [] : ['--import', join(dir, 'no-gpu.mjs')];
  const r = spawnSync(process.execPath, [...hook, 'bin/strata.js', ...args], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** Copy the bundle and set one element of a weight tensor in its safetensors file. */
function bundleWithWeight(name: string, tensor: string, index: number, value: number): string {
  const b = join(dir, name);
  cpSync(bundle, b, { recursive: true });
  const file = join(b, 'weights.safetensors');
  const buf = readFileSync(file);
  const headerLen = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + headerLen).toString('utf8')) as Record<
    string,
    { data_offsets: [number, number] }
  >;
  const at = 8 + headerLen + header[tensor].data_offsets[0] + 4 * index;
  buf.writeFloatLE(value, at);
  writeFileSync(file, buf);
  return b;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'strata-run-rel-'));
  writeFileSync(join(dir, 'tiny.strata'), SPEC);
  writeFileSync(
    join(dir, 'no-gpu-hooks.mjs'),
    `export async function resolve(specifier, context, next) {
  if (specifier === 'webgpu') throw new Error('TEST-HOOK: the GPU was acquired');
  return next(specifier, context);
}
`,
  );
  writeFileSync(
    join(dir, 'no-gpu.mjs'),
    `import { register } from 'node:module';\nregister('./no-gpu-hooks.mjs', import.meta.url);\n`,
  );
  bundle = join(dir, 'tiny.bundle');
  const r = await cli(
    'compile',
    join(dir, 'tiny.strata'),
    '-o',
    bundle,
    '--max-t',
    '8',
    '--capacity',
    '32',
  );
  expect(r.code, r.err).toBe(0);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('--prompt-ids and capacity are checked before the GPU', () => {
  it('parsePromptIds takes strict decimal ids below the vocab only', () => {
    expect(parsePromptIds('5,17, 3 ,0', 64)).toEqual([5, 17, 3, 0]);
    for (const bad of ['0x10', '1e1', '+5', '-1', '5,,3', '5,', '007', '1.0', ' ', '0b1']) {
      expect(() => parsePromptIds(bad, 64), bad).toThrow(
        /--prompt-ids must be comma-separated decimal token ids in \[0, 64\)/,
      );
    }
    expect(() => parsePromptIds('5,64', 64)).toThrow(
      "--prompt-ids: token id 64 is outside the model's vocab (ids are in [0, 64))",
    );
  });

  it('checkRunFits refuses with both numbers and the fix', () => {
    expect(() => checkRunFits(40, 1, 32, 64)).toThrow(
      'prompt of 40 tokens exceeds the KV cache capacity 32 (recompile with --capacity 40)',
    );
    expect(() => checkRunFits(5, 1000, 512, 4096)).toThrow(
      'prompt of 5 tokens + --max-tokens 1000 needs 1004 KV cache positions, over the capacity 512: ' +
        'use --max-tokens 508 or less, or recompile with --capacity 1004',
    );
    expect(() => checkRunFits(5, 1000, 512, 600)).toThrow(
      "the model's max_context 600 cannot hold 1004",
    );
    expect(() => checkRunFits(5, 28, 32, 64)).not.toThrow();
    expect(() => checkRunFits(5, 28, 32, 64, true)).toThrow(/use --max-tokens 27 or less/);
  });

  it('a bad id, a prompt over the capacity and too many tokens fail without acquiring the GPU', () => {
    // The hook works: a valid run reaches the GPU and trips it.
    const ok = spawnCli(['run', bundle, '--prompt-ids', '5,17,3', '--max-tokens', '2']);
    expect(ok.code).toBe(1);
    expect(ok.err).toContain('TEST-HOOK: the GPU was acquired');

    const hex = spawnCli(['run', bundle, '--prompt-ids', '5,0x10,3']);
    expect(hex.code).toBe(1);
    expect(hex.err).toContain(
      "--prompt-ids must be comma-separated decimal token ids in [0, 64), got '0x10'",
    );
    expect(hex.err).not.toContain('TEST-HOOK');

    const big = spawnCli(['run', bundle, '--prompt-ids', '5,64']);
    expect(big.err).toContain("token id 64 is outside the model's vocab");
    expect(big.err).not.toContain('TEST-HOOK');

    const ids = Array.from({ length: 40 }, (_, i) => i % 64).join(',');
    const long = spawnCli(['run', bundle, '--prompt-ids', ids]);
    expect(long.code).toBe(1);
    expect(long.err).toContain(
      'prompt of 40 tokens exceeds the KV cache capacity 32 (recompile with --capacity 40)',
    );
    expect(long.err).not.toContain('TEST-HOOK');

    const many = spawnCli(['run', bundle, '--prompt-ids', '5,17,3', '--max-tokens', '1000']);
    expect(many.code).toBe(1);
    expect(many.err).toContain(
      'prompt of 3 tokens + --max-tokens 1000 needs 1002 KV cache positions, over the capacity 32: ' +
        "use --max-tokens 30 or less, or the model's max_context 64 cannot hold 1002",
    );
    expect(many.err).not.toContain('TEST-HOOK');
    expect(many.out).toBe('');
  });

  it('sampling options are checked before the GPU: range, integer top-k, the vocab', () => {
    for (const [args, message] of [
      [['--top-p', '1.5'], "--top-p must be a number in [0, 1], got '1.5'"],
      [['--top-k', '2.5'], "--top-k must be a non-negative integer in decimal, got '2.5'"],
      [['--top-k', '65'], "--top-k must be at most the vocab (64), got '65'"],
      [['--temperature', 'nan'], "--temperature must be a number in [0, 100], got 'nan'"],
    ] as const) {
      const r = spawnCli(['run', bundle, '--prompt-ids', '5', ...args]);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.err).toContain(message);
      expect(r.err).not.toContain('TEST-HOOK');
    }
  });

  it('the largest --max-tokens that fits runs to the end', async () => {
    const r = await cli('run', bundle, '--prompt-ids', '5,17,3', '--max-tokens', '30', '--ids');
    expect(r.code, r.err).toBe(0);
    expect(r.out.trim().split(/\s+/).length).toBe(30);
  });
});

/** This process's open file descriptors that point at `path` (Linux: /proc/self/fd). */
function openHandles(path: string): number {
  const target = realpathSync(path);
  return readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(join('/proc/self/fd', fd)) === target;
    } catch {
      return false; // the descriptor readdir itself used, closed since
    }
  }).length;
}

describe.runIf(existsSync('/proc/self/fd'))('the checkpoint a run reads', () => {
  // Node warns when a file handle is left to the garbage collector, and a long-lived process
  // (serve, an app embedding the CLI) would hold every checkpoint it ever ran.
  const hf = 'test/fixtures/hf/llama';
  const weights = join(hf, 'model.safetensors');

  it('is closed once its weights are on the GPU, and when the run is refused before', async () => {
    expect(openHandles(weights)).toBe(0);
    const r = await cli('run', hf, '--prompt-ids', '5,17,3', '--max-tokens', '2', '--ids');
    expect(r.code, r.err).toBe(0);
    expect(openHandles(weights)).toBe(0);
    const bad = await cli('run', hf, '--prompt-ids', '5,999', '--max-tokens', '2');
    expect(bad.code).toBe(1);
    expect(bad.err).toContain('999');
    expect(openHandles(weights)).toBe(0);
  });

  it('is closed by inspect, which reads a spec with --weights for its costs only', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'strata-inspect-'));
    try {
      const spec = join(dir, 'llama.strata');
      const imp = await cli('import', hf, '-o', spec);
      expect(imp.code, imp.err).toBe(0);
      const r = await cli('inspect', spec, '--weights', hf);
      expect(r.code, r.err).toBe(0);
      expect(r.out).toContain('parameters');
      expect(openHandles(weights)).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('non-finite logits and WebGPU errors end the run on stderr', () => {
  it('a NaN in layer 1 down_proj: exit 1 naming prefill; --check-finite names layer 1 and the dispatch', async () => {
    const nan = bundleWithWeight('nan.bundle', 'model.layers.1.mlp.down_proj.weight', 10, NaN);
    const r = await cli('run', nan, '--prompt-ids', '5,17,3', '--max-tokens', '4', '--ids');
    expect(r.code).toBe(1);
    expect(r.err).toContain(
      'strata run: non-finite logits (NaN or Inf) in prefill of positions 0..2 at position 2 ' +
        '(rerun with --check-finite to find the first dispatch that produced it)',
    );
    expect(r.out.trim()).toBe('');

    const c = await cli(
      'run',
      nan,
      '--prompt-ids',
      '5,17,3',
      '--max-tokens',
      '4',
      '--check-finite',
      '--ids',
    );
    expect(c.code).toBe(1);
    expect(c.err).toMatch(
      /--check-finite: the first non-finite value comes from layer 1: prefill of positions 0\.\.2, dispatch \d+ 'l1\.mlp\.down\+residual' \(kernel \w+\) wrote NaN to its 'out' buffer \(slot:\d+\)/,
    );
  });

  it('a WebGPU validation error mid-run: exit 1, the error on stderr, nothing but tokens on stdout', () => {
    const b = join(dir, 'alias.bundle');
    cpSync(bundle, b, { recursive: true });
    const m = JSON.parse(readFileSync(join(b, 'manifest.json'), 'utf8')) as {
      phases: { decode: { dispatches: { bind: Record<string, string> }[] } };
    };
    // A decode dispatch that writes the buffer it reads: invalid in WebGPU.
    const d = m.phases.decode.dispatches.find((x) => x.bind.x && x.bind.out)!;
    d.bind.out = d.bind.x;
    writeFileSync(join(b, 'manifest.json'), JSON.stringify(m));
    const r = spawnCli(['run', b, '--prompt-ids', '5,17,3', '--max-tokens', '4', '--ids'], true);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/strata run: WebGPU validation error during decode step 1: /);
    // The prefill's token, then the line ends: no Dawn message between tokens.
    expect(r.out).toMatch(/^\d+ \n$/);
  });

  it('a grid over the device limit is refused at load, naming the dispatch', async () => {
    const b = join(dir, 'grid.bundle');
    cpSync(bundle, b, { recursive: true });
    const m = JSON.parse(readFileSync(join(b, 'manifest.json'), 'utf8')) as {
      phases: { prefill: { dispatches: { grid: unknown[]; label: string }[] } };
    };
    m.phases.prefill.dispatches[1].grid = [1e9, 1, 1];
    writeFileSync(join(b, 'manifest.json'), JSON.stringify(m));
    const r = await cli('run', b, '--prompt-ids', '5,17,3', '--max-tokens', '4', '--ids');
    expect(r.code).toBe(1);
    expect(r.err).toContain(`prefill dispatch 1 '${m.phases.prefill.dispatches[1].label}'`);
    expect(r.err).toMatch(
      /maxComputeWorkgroupsPerDimension is \d+, but .* with grid \[1000000000, 1, 1\] at T = 1 needs 1000000000/,
    );
    expect(r.out).toBe('');
  });
});

describe('--prompts: several prompts decoded as one batch', () => {
  const prompts = ['5,17,3', '40,41,42,43,44,45,46,47,48,49'];

  it('prints each prompt line as the same run alone decodes it, in the file order', async () => {
    // A blank line between the prompts is skipped; the second prompt takes three prefill steps.
    const file = join(dir, 'prompts.txt');
    writeFileSync(file, `${prompts[0]}\n\n${prompts[1]}\n`);
    const opts = ['--max-tokens', '5', '--ids', '--max-t', '4', '--capacity', '32'];
    const batch = await cli('run', join(dir, 'tiny.strata'), '--prompts', file, ...opts);
    expect(batch.code, batch.err).toBe(0);
    expect(batch.err).toMatch(/2 sequences \(batch 2\)/);
    const lines = batch.out.trim().split('\n');
    expect(lines).toHaveLength(2);
    for (const [s, p] of prompts.entries()) {
      const alone = await cli('run', join(dir, 'tiny.strata'), '--prompt-ids', p, ...opts);
      expect(alone.code, alone.err).toBe(0);
      expect(lines[s]).toBe(`[${s}] ${alone.out.trim()}`);
    }
  });

  it('refuses a bad file, a bad line, other prompt flags and a full bundle before the GPU', async () => {
    const file = (name: string, text: string) => {
      const f = join(dir, name);
      writeFileSync(f, text);
      return f;
    };
    const good = file('good.txt', `${prompts.join('\n')}\n`);
    const spec = join(dir, 'tiny.strata');
    const cases: [string[], string][] = [
      [['--prompts', join(dir, 'absent.txt')], `--prompts ${join(dir, 'absent.txt')}: ENOENT`],
      [['--prompts', file('blank.txt', '\n \n')], 'holds no prompt'],
      [
        ['--prompts', file('bad.txt', '5,17\n\n4x\n')],
        `--prompts ${join(dir, 'bad.txt')}:3 must be comma-separated decimal token ids in [0, 64), got '4x'`,
      ],
      [['--prompts', good, '--prompt-ids', '3'], '--prompts takes every prompt'],
      [['--prompts', good, '--dump-logits', join(dir, 'x')], '--prompts runs autoregressive'],
    ];
    for (const [args, message] of cases) {
      const r = spawnCli(['run', spec, ...args]);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.err).toContain(message);
      expect(r.err).not.toContain('TEST-HOOK');
    }
    // A bundle compiled for one sequence holds one prompt, and a batched one needs --prompts.
    const one = spawnCli(['run', bundle, '--prompts', good]);
    expect(one.err).toContain(
      "2 prompts exceed the bundle's batch of 1 sequences (compile with --batch 2 or more)",
    );
    expect(one.err).not.toContain('TEST-HOOK');
    const b2 = join(dir, 'batch2.bundle');
    const c = await cli(
      'compile',
      spec,
      '-o',
      b2,
      '--batch',
      '2',
      '--max-t',
      '4',
      '--capacity',
      '32',
    );
    expect(c.code, c.err).toBe(0);
    const none = spawnCli(['run', b2, '--prompt-ids', '3']);
    expect(none.err).toContain(
      `${b2} decodes 2 sequences a step: give its prompts with --prompts FILE`,
    );
    expect(none.err).not.toContain('TEST-HOOK');
  });
});
