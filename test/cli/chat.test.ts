/**
 * `run --chat`: the turn logic on a scripted sequence (what each turn feeds), and the command
 * end to end through stdin on a HuggingFace folder with a ChatML tokenizer.
 */
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, cpSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chatLoop } from '../../src/cli/chat.ts';
import { hfTokenizer } from '../../runtime/tokenizer.ts';
import { chatTemplate } from '../../runtime/chat.ts';
import type { Sequence } from '../../runtime/model.ts';
import { GREEDY } from '../../codegen/kernel-ir.ts';
import { importHfConfig } from '../../src/import/hf.ts';
import { expectedTensors } from '../../src/import/names.ts';
import { randomWeights } from '../../src/import/random-init.ts';
import { serializeSafetensors, type TensorToWrite } from '../../formats/safetensors.ts';

const TOK = 'test/fixtures/tokenizers/bytelevel_bpe';
const read = (f: string) => JSON.parse(readFileSync(join(TOK, f), 'utf8'));
const files = () => ({ tokenizer: read('tokenizer.json'), config: read('tokenizer_config.json') });

async function* linesOf(...lines: string[]) {
  yield* lines;
}

describe('chat turns', () => {
  it('feeds the first rendering, then only what follows the reply; never resets', async () => {
    const f = files();
    const eos = 2; // <|im_end|>
    const tok = hfTokenizer({ ...f, eos: [eos] }, 'chatml');
    const render = chatTemplate(f.config, 'chatml')!;
    const replies = [tok.encode('Hi there', { special: false }).concat(eos), tok.encode('Sure')];
    const fedIds: number[][] = [];
    let resets = 0;
    const seq = {
      pos: 0,
      capacity: 4096,
      reset: () => resets++,
      async *generate(ids: number[]) {
        fedIds.push([...ids]);
        yield* replies[fedIds.length - 1] ?? [];
      },
    } as unknown as Sequence;
    const out: string[] = [];
    await chatLoop(seq, tok, render, linesOf('Hello!', '', 'And again?'), {
      system: 'Be brief.',
      maxTokens: 8,
      sampling: GREEDY,
      ignoreEos: false,
      write: (s) => out.push(s),
      note: () => {},
    });
    expect(resets).toBe(0);
    expect(fedIds.length).toBe(2);
    const first = render(
      [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Hello!' },
      ],
      true,
    );
    expect(tok.decode(fedIds[0])).toBe(first);
    // Turn 2 starts right after the EOS the model produced: the template's newline, then the user.
    expect(tok.decode(fedIds[1])).toBe(
      '\n<|im_start|>user\nAnd again?<|im_end|>\n<|im_start|>assistant\n',
    );
    expect(out.join('')).toBe('Hi there\nSure\n');
  });
});

/** A llama-shaped HF folder with vocab 512 (the tokenizer has 400) and seeded random weights. */
function chatFolder(dir: string): string {
  const config = {
    ...JSON.parse(readFileSync('test/fixtures/hf/llama/config.json', 'utf8')),
    vocab_size: 512,
  };
  const { model } = importHfConfig(config, 'chat');
  const weights = randomWeights(model, 3);
  const st: Record<string, TensorToWrite> = {};
  for (const t of expectedTensors(model))
    st[t.name] = { dtype: 'F32', shape: t.shape, data: weights(t.name) as Float32Array };
  const d = join(dir, 'chat');
  cpSync('test/fixtures/hf/llama', d, {
    recursive: true,
    filter: (p) => !p.endsWith('.safetensors'),
  });
  writeFileSync(join(d, 'config.json'), JSON.stringify(config));
  writeFileSync(join(d, 'model.safetensors'), new Uint8Array(serializeSafetensors(st)));
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) cpSync(join(TOK, f), join(d, f));
  writeFileSync(join(d, 'generation_config.json'), JSON.stringify({ eos_token_id: 2 }));
  return d;
}

function runWithStdin(input: string, ...args: string[]) {
  return new Promise<{ code: number | null; out: string; err: string }>((done, fail) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args]);
    let out = '';
    let err = '';
    child.stdout.on('data', (b) => (out += String(b)));
    child.stderr.on('data', (b) => (err += String(b)));
    child.on('error', fail);
    child.on('close', (code) => done({ code, out, err }));
    child.stdin.end(input);
  });
}

describe('strata run --chat', () => {
  it('answers three turns read from stdin', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'strata-chat-'));
    try {
      const d = chatFolder(dir);
      const r = await runWithStdin(
        'Hello!\nWhat is 2+2?\nAnd 3+3?\n',
        'run',
        d,
        '--chat',
        '--system',
        'Be brief.',
        '--max-tokens',
        '5',
      );
      expect(r.code, r.err).toBe(0);
      expect(r.out.split('\n').filter((l) => l.length > 0).length).toBe(3);
      // Each reply's time to first token and rate go to stderr, never into the replies.
      expect(r.err.match(/first token after \d+ ms/g)).toHaveLength(3);
      const bad = await runWithStdin('', 'run', 'specs/tiny-llama.strata', '--chat');
      expect(bad.code).not.toBe(0);
      expect(bad.err).toMatch(/--chat needs the model's tokenizer.json and a chat_template/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
