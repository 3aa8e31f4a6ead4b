/**
 * Model tokenizers through @huggingface/tokenizers against ids HF tokenizers computed
 * (tools/golden/make_tokenizer_golden.py: byte-level BPE, SentencePiece-style BPE with byte
 * fallback, Unigram), and streaming decode that keeps characters whole.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { byteTokenizer, hfTokenizer, type TokenizerFiles } from '../../runtime/tokenizer.ts';
import { chatTemplate, type ChatMessage } from '../../runtime/chat.ts';

const DIR = 'test/fixtures/tokenizers';
const KINDS = ['bytelevel_bpe', 'sp_bpe', 'unigram'];

function load(kind: string): { files: TokenizerFiles; golden: Golden } {
  const read = (f: string) => JSON.parse(readFileSync(join(DIR, kind, f), 'utf8'));
  return {
    files: { tokenizer: read('tokenizer.json'), config: read('tokenizer_config.json'), eos: [] },
    golden: read('golden.json'),
  };
}

interface Golden {
  strings: string[];
  ids: number[][];
  decoded: string[];
}

describe('tokenizer.json tokenizers equal HF tokenizers', () => {
  for (const kind of KINDS) {
    it(`${kind}: ids and decoded text of every test string`, () => {
      const { files, golden } = load(kind);
      const tok = hfTokenizer(files, kind);
      golden.strings.forEach((s, i) => {
        expect(tok.encode(s), JSON.stringify(s)).toEqual(golden.ids[i]);
        expect(tok.decode(golden.ids[i]), JSON.stringify(s)).toBe(golden.decoded[i]);
      });
    });

    it(`${kind}: streaming decode gives the same text in whole characters`, () => {
      const { files, golden } = load(kind);
      const tok = hfTokenizer(files, kind);
      golden.ids.forEach((ids, i) => {
        const step = tok.decodeStream();
        const pieces = ids.map(step);
        expect(pieces.join(''), JSON.stringify(golden.strings[i])).toBe(golden.decoded[i]);
        // No piece ends inside a character (a lone surrogate or a replacement character).
        for (const p of pieces) {
          expect(p.includes('\uFFFD') && !golden.decoded[i].includes('\uFFFD')).toBe(false);
          expect(/[\uD800-\uDBFF]$/.test(p)).toBe(false);
        }
      });
    });
  }

  it('refuses a tokenizer model kind it cannot run, naming it', () => {
    const { files } = load('unigram');
    const odd = { ...files, tokenizer: { ...files.tokenizer, model: { type: 'WordLevelX' } } };
    expect(() => hfTokenizer(odd, 'x/tokenizer.json')).toThrow(
      /x\/tokenizer.json: tokenizer model type "WordLevelX" is not one strata runs/,
    );
  });

  it('the byte tokenizer round-trips text and streams multi-byte characters whole', () => {
    const tok = byteTokenizer(260);
    const text = 'naïve 🙂';
    const ids = tok.encode(text);
    const step = tok.decodeStream();
    const pieces = ids.map(step);
    expect(pieces.join('')).toBe(text);
    expect(pieces.filter((p) => p.length > 0)).toEqual(['n', 'a', 'ï', 'v', 'e', ' ', '🙂']);
  });
});

describe('chat templates equal transformers apply_chat_template', () => {
  it('bytelevel_bpe (ChatML): every golden conversation renders byte for byte', () => {
    const read = (f: string) => JSON.parse(readFileSync(join(DIR, 'bytelevel_bpe', f), 'utf8'));
    const render = chatTemplate(read('tokenizer_config.json'), 'bytelevel_bpe');
    const golden = read('golden.json') as {
      chat: { messages: ChatMessage[]; add_generation_prompt: boolean; text: string }[];
    };
    expect(golden.chat.length).toBeGreaterThan(1);
    for (const c of golden.chat) expect(render!(c.messages, c.add_generation_prompt)).toBe(c.text);
  });

  it('no template is null; a broken one is an error naming the file', () => {
    expect(chatTemplate({}, 'x')).toBeNull();
    expect(() => chatTemplate({ chat_template: '{% for %}' }, 'm/tokenizer_config.json')).toThrow(
      /m\/tokenizer_config.json: chat_template does not parse/,
    );
  });
});
