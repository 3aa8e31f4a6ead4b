/**
 * Text through a checkpoint's own tokenizer: `run` on a HuggingFace folder with tokenizer.json,
 * the same tokenizer copied into a compiled bundle, EOS ending generation, and a folder without
 * one refusing a text prompt instead of feeding bytes.
 */
import { describe, expect, it } from 'vitest';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli } from './run-cli.ts';
import { hfTokenizer } from '../../runtime/tokenizer.ts';

/** An HF fixture (vocab 256: llama by default) with the Unigram test tokenizer (158 tokens). */
function folder(dir: string, withTokenizer: boolean, eos?: number, fixture = 'llama'): string {
  const d = join(dir, `${fixture}-${withTokenizer ? 'with' : 'without'}`);
  cpSync(`test/fixtures/hf/${fixture}`, d, { recursive: true });
  for (const f of ['golden.safetensors']) if (existsSync(join(d, f))) rmSync(join(d, f));
  if (withTokenizer) {
    for (const f of ['tokenizer.json', 'tokenizer_config.json'])
      cpSync(join('test/fixtures/tokenizers/unigram', f), join(d, f));
    if (eos !== undefined)
      writeFileSync(join(d, 'generation_config.json'), JSON.stringify({ eos_token_id: eos }));
  }
  return d;
}

const unigram = () =>
  hfTokenizer(
    {
      tokenizer: JSON.parse(
        readFileSync('test/fixtures/tokenizers/unigram/tokenizer.json', 'utf8'),
      ),
      config: {},
      eos: [],
    },
    'unigram',
  );

/** A temporary folder for one test, removed after it. */
async function inTemp(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'strata-tok-'));
  try {
    await body(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `run` on the fixed prompt, printing ids. */
const runIds = (model: string, ...extra: string[]) =>
  cli('run', model, '--prompt', 'the quick fox', '--max-tokens', '6', '--ids', ...extra);

const idsOf = (out: string) => out.trim().split(/\s+/).filter(Boolean).map(Number);

describe('run with a checkpoint tokenizer', () => {
  it('encodes the prompt with tokenizer.json, and a compiled bundle carries it', () =>
    inTemp(async (dir) => {
      const d = folder(dir, true);
      const ids = await runIds(d);
      expect(ids.code, ids.err).toBe(0);
      const text = await cli('run', d, '--prompt', 'the quick fox', '--max-tokens', '6');
      expect(text.code, text.err).toBe(0);
      // The generated ids, decoded by the same tokenizer, are the text run printed.
      expect(text.out.trim()).toBe(unigram().decode(idsOf(ids.out)).trim());
      const out = join(dir, 'bundle');
      expect((await cli('compile', d, '-o', out)).code).toBe(0);
      const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8'));
      expect(manifest.tokenizer).toMatchObject({ kind: 'file', file: 'tokenizer.json' });
      expect((await runIds(out)).out).toBe(ids.out);
    }));

  it('a Jamba-type checkpoint streams text through its own tokenizer.json too', () =>
    inTemp(async (dir) => {
      const d = folder(dir, true, undefined, 'jamba');
      const ids = await runIds(d);
      expect(ids.code, ids.err).toBe(0);
      const text = await cli('run', d, '--prompt', 'the quick fox', '--max-tokens', '6');
      expect(text.code, text.err).toBe(0);
      expect(text.out.trim()).toBe(unigram().decode(idsOf(ids.out)).trim());
    }));

  it("stops at the model's EOS unless --ignore-eos", () =>
    inTemp(async (dir) => {
      const probe = folder(dir, true);
      const first = await runIds(probe);
      const gen = idsOf(first.out);
      // Make the third generated token the EOS: generation must end before printing it.
      rmSync(probe, { recursive: true });
      const d = folder(dir, true, gen[2]);
      expect(idsOf((await runIds(d)).out)).toEqual(gen.slice(0, gen.indexOf(gen[2])));
      expect((await runIds(d, '--ignore-eos')).out).toBe(first.out);
    }));

  it('a folder without tokenizer.json refuses a text prompt and takes ids', () =>
    inTemp(async (dir) => {
      const d = folder(dir, false);
      const r = await cli('run', d, '--prompt', 'hello', '--max-tokens', '2');
      expect(r.code).not.toBe(0);
      expect(r.err).toMatch(/has no tokenizer strata reads .*tokenizer\.json.*--prompt-ids/);
      expect((await cli('run', d, '--prompt-ids', '1,2,3', '--max-tokens', '2')).code).toBe(0);
    }));
});
