/**
 * Tokenizers the runtime runs text through:
 * - a model's own tokenizer.json (with tokenizer_config.json), through @huggingface/tokenizers,
 *   which implements HF tokenizers' pipeline in plain JS (browser-safe);
 * - the byte tokenizer, for specs that have no tokenizer (random-weight designs): UTF-8 bytes are
 *   token ids 0..255; ids ≥ 256 have no text and show as U+FFFD.
 * Streaming decode keeps multi-byte characters whole across tokens.
 */
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import type { TokenizerFiles } from '../src/import/tokenizer-files.ts';

export type { TokenizerFiles } from '../src/import/tokenizer-files.ts';

export interface Tokenizer {
  /**
   * Text → ids, with the special tokens the tokenizer adds (BOS) as transformers' tokenizer(text)
   * does, or without them (`special: false`), as apply_chat_template tokenizes a rendering.
   */
  encode(text: string, opts?: { special?: boolean }): number[];
  /** Returns the text completed by this token (possibly empty mid-character). */
  decodeStream(): (token: number) => string;
  decode(tokens: number[]): string;
  /** Ids that end generation (the model's EOS); empty when the tokenizer knows none. */
  readonly eos: readonly number[];
}

export function byteTokenizer(vocab: number): Tokenizer {
  if (vocab < 256) throw new Error(`the byte tokenizer needs vocab >= 256, the model has ${vocab}`);
  return {
    eos: [],
    encode: (text) => [...new TextEncoder().encode(text)],
    decodeStream() {
      const dec = new TextDecoder('utf-8', { fatal: false });
      return (t) => (t < 256 ? dec.decode(Uint8Array.of(t), { stream: true }) : '\uFFFD');
    },
    decode(tokens) {
      const step = this.decodeStream();
      return tokens.map(step).join('');
    },
  };
}

/** The kinds of tokenizer.json `model` @huggingface/tokenizers implements. */
const MODEL_KINDS = ['BPE', 'Unigram', 'WordPiece'];

export function hfTokenizer(files: TokenizerFiles, where: string): Tokenizer {
  const model = (files.tokenizer as { model?: { type?: unknown } }).model;
  const kind = model?.type;
  if (typeof kind !== 'string' || !MODEL_KINDS.includes(kind)) {
    throw new Error(
      `${where}: tokenizer model type ${JSON.stringify(kind)} is not one strata runs (${MODEL_KINDS.join(', ')})`,
    );
  }
  const tok = new HfTokenizer(files.tokenizer, files.config);
  // The library refuses an empty list; HF decodes it to ''.
  const decode = (ids: number[]) =>
    ids.length === 0 ? '' : tok.decode(ids, { skip_special_tokens: false });
  return {
    eos: files.eos,
    encode: (text, opts) => tok.encode(text, { add_special_tokens: opts?.special ?? true }).ids,
    decode,
    decodeStream() {
      // Decode a short window rather than everything so far: `prefix` ids whose text has been
      // printed give the context (spaces, byte fallback) for the ids after them. A window whose
      // text ends in U+FFFD stops mid-character and waits for the next token.
      const ids: number[] = [];
      let prefix = 0;
      let read = 0;
      return (t) => {
        ids.push(t);
        const before = decode(ids.slice(prefix, read));
        const now = decode(ids.slice(prefix));
        if (now.length <= before.length || now.endsWith('\uFFFD')) return '';
        const fresh = now.slice(before.length);
        prefix = read;
        read = ids.length;
        return fresh;
      };
    },
  };
}
