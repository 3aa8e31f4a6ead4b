/**
 * A HuggingFace folder's tokenizer: tokenizer.json, tokenizer_config.json, and the EOS ids
 * generation stops at (generation_config.json's eos_token_id, else config.json's). Read as they
 * are; the runtime (runtime/tokenizer.ts) decides whether it can run them.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readJsonObject } from '../../formats/node/json-file.ts';

/** What a bundle or a HuggingFace folder holds of a tokenizer. */
export interface TokenizerFiles {
  /** tokenizer.json, parsed. */
  tokenizer: object;
  /** tokenizer_config.json, parsed ({} when the model has none). */
  config: object;
  /** EOS ids from generation_config.json or config.json; [] when neither names one. */
  eos: number[];
}

/**
 * What a model's text goes through: its own tokenizer files; 'bytes' for a spec that has none
 * (UTF-8 bytes are ids); 'none' for a checkpoint whose tokenizer strata did not find or cannot
 * read, so that a text prompt is refused instead of being fed as bytes.
 */
export type ModelTokenizer = TokenizerFiles | 'bytes' | 'none';

/** eos_token_id as a list of ids, or null when the file does not say. */
function eosIds(v: unknown, path: string): number[] | null {
  if (v === undefined || v === null) return null;
  const ids = Array.isArray(v) ? v : [v];
  if (!ids.every((x) => Number.isSafeInteger(x) && (x as number) >= 0))
    throw new Error(
      `${path}: eos_token_id must be a token id or a list of them, got ${JSON.stringify(v)}`,
    );
  return ids as number[];
}

/** The folder's tokenizer, or null when it has no tokenizer.json. */
export async function readTokenizerFiles(dir: string): Promise<TokenizerFiles | null> {
  const tokPath = join(dir, 'tokenizer.json');
  if (!existsSync(tokPath)) return null;
  const tokenizer = await readJsonObject(tokPath);
  const cfgPath = join(dir, 'tokenizer_config.json');
  const config = existsSync(cfgPath) ? await readJsonObject(cfgPath) : {};
  let eos: number[] | null = null;
  for (const f of ['generation_config.json', 'config.json']) {
    const p = join(dir, f);
    if (eos === null && existsSync(p)) {
      eos = eosIds((await readJsonObject(p)).eos_token_id, p);
    }
  }
  return { tokenizer, config, eos: eos ?? [] };
}
