/**
 * What `strata run` settles on the host before a GPU is acquired: the tokenizer, the chat
 * template, the prompt's token ids, and whether they fit the KV cache. Everything here fails
 * fast, so that a typo costs no weight loading.
 */
import { readFile } from 'node:fs/promises';
import { UserError } from './command.ts';
import type { BundleSource } from '../../codegen/manifest.ts';
import type { ModelInput } from './model-input.ts';
import {
  byteTokenizer,
  hfTokenizer,
  type Tokenizer,
  type TokenizerFiles,
} from '../../runtime/tokenizer.ts';
import { chatTemplate, type ChatTemplate } from '../../runtime/chat.ts';

/**
 * `--prompt-ids`: comma-separated token ids, each strictly decimal (no hex, exponents, signs
 * or empty items: Number() would take '0x10' as 16) and below the model's vocab. Runs before
 * the GPU is acquired, so a typo fails at once.
 */
export function parsePromptIds(s: string, vocab: number, what = '--prompt-ids'): number[] {
  const items = s.split(',').map((x) => x.trim());
  const ids: number[] = [];
  for (const x of items) {
    if (!/^(0|[1-9][0-9]*)$/.test(x)) {
      throw new UserError(
        `${what} must be comma-separated decimal token ids in [0, ${vocab}), got '${x}' in '${s}'`,
      );
    }
    const id = Number(x);
    if (id >= vocab) {
      throw new UserError(
        `${what}: token id ${x} is outside the model's vocab (ids are in [0, ${vocab}))`,
      );
    }
    ids.push(id);
  }
  return ids;
}

/**
 * Refuse a run whose prompt, or prompt plus the tokens asked for, does not fit in the KV
 * cache, before the model is loaded: `strata run` has no stop tokens, so generating past the
 * capacity would always end short of --max-tokens.
 */
export function checkRunFits(
  promptLength: number,
  maxTokens: number,
  capacity: number,
  maxContext: number,
  /** --dump-logits feeds the last token too (it records the logits after it). */
  feedsLast = false,
): void {
  const fix = (need: number) =>
    need <= maxContext
      ? `recompile with --capacity ${need}`
      : `the model's max_context ${maxContext} cannot hold ${need}`;
  if (promptLength > capacity) {
    throw new UserError(
      `prompt of ${promptLength} tokens exceeds the KV cache capacity ${capacity} (${fix(promptLength)})`,
    );
  }
  // Generation does not feed its last token back, so prompt + maxTokens - 1 positions are used.
  const slack = feedsLast ? 0 : 1;
  const need = promptLength + maxTokens - slack;
  if (need > capacity) {
    throw new UserError(
      `prompt of ${promptLength} tokens + --max-tokens ${maxTokens} needs ${need} KV cache positions, ` +
        `over the capacity ${capacity}: use --max-tokens ${capacity - promptLength + slack} or less, or ${fix(need)}`,
    );
  }
}

/**
 * The tokenizer text goes through: the bundle's or the checkpoint's tokenizer files; UTF-8 bytes
 * for a spec (or a bundle compiled from one) with a vocab of at least 256; otherwise none, and a
 * text prompt is refused rather than fed as bytes.
 */
async function textTokenizer(
  source: BundleSource | null,
  input: ModelInput | null,
  where: string,
  vocab: number,
): Promise<{ tok: Tokenizer | null; files: TokenizerFiles | null }> {
  const files = source ? await source.tokenizer() : input!.tokenizer;
  if (files !== null && typeof files === 'object') return { tok: hfTokenizer(files, where), files };
  const kind = source ? source.manifest.tokenizer.kind : files;
  return { tok: kind === 'bytes' && vocab >= 256 ? byteTokenizer(vocab) : null, files: null };
}

/** The options of `strata run` that say what the prompt is. */
export interface PromptOptions {
  prompt?: string;
  'prompt-ids'?: string;
  /** A file of prompts, one a line, decoded as one batch (run-batch.ts). */
  prompts?: string;
  'dump-logits'?: string;
  chat?: boolean;
  system?: string;
}

/**
 * The prompts of `file`: one a line (blank lines skipped), through the tokenizer, or as
 * comma-separated token ids when the model has none.
 */
export async function readPrompts(
  file: string,
  tok: Tokenizer | null,
  vocab: number,
): Promise<number[][]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new UserError(`--prompts ${file}: ${(e as Error).message}`);
  }
  // Line numbers are the file's own, blank lines (skipped) counted.
  const lines = text
    .split(/\r?\n/)
    .map((l, i) => ({ l, n: i + 1 }))
    .filter(({ l }) => l.trim() !== '');
  if (lines.length === 0) throw new UserError(`--prompts ${file} holds no prompt`);
  return lines.map(({ l, n }) => {
    const ids = tok ? tok.encode(l) : parsePromptIds(l, vocab, `--prompts ${file}:${n}`);
    if (ids.length === 0) throw new UserError(`--prompts ${file}:${n}: the prompt is empty`);
    return ids;
  });
}

/**
 * The prompt's ids, the tokenizer that decodes the output (null: print ids), and the chat
 * template under --chat (whose turns come from stdin: one token stands for them in the
 * capacity check). Under --prompts, every prompt of the file (`batch`), and the longest as
 * `prompt`, the one the capacity check takes.
 */
export async function runPrompt(
  source: BundleSource | null,
  input: ModelInput | null,
  where: string,
  vocab: number,
  values: PromptOptions,
): Promise<{
  prompt: number[];
  tok: Tokenizer | null;
  template: ChatTemplate | null;
  batch: number[][] | null;
}> {
  const t = await textTokenizer(source, input, where, vocab);
  const tok = t.tok;
  let template: ChatTemplate | null = null;
  if (values.system !== undefined && !values.chat) throw new UserError('--system goes with --chat');
  if (values.chat) {
    template = t.files && chatTemplate(t.files.config, `${where} tokenizer_config.json`);
    if (!tok || !template)
      throw new UserError(
        `--chat needs the model's tokenizer.json and a chat_template in tokenizer_config.json; ${where} has ${tok ? 'no chat_template' : 'no tokenizer strata reads'}`,
      );
    if (
      values.prompt !== undefined ||
      values['prompt-ids'] !== undefined ||
      values['dump-logits'] !== undefined
    )
      throw new UserError(
        '--chat reads the conversation from stdin: drop --prompt, --prompt-ids and --dump-logits',
      );
  }
  if (values.prompts !== undefined) {
    const batch = await readPrompts(values.prompts, tok, vocab);
    const prompt = batch.reduce((a, b) => (b.length > a.length ? b : a));
    return { prompt, tok, template, batch };
  }
  let prompt: number[];
  if (values.chat) prompt = [0];
  else if (values['prompt-ids'] !== undefined) prompt = parsePromptIds(values['prompt-ids'], vocab);
  else if (tok) prompt = tok.encode(values.prompt ?? 'Hello');
  else
    throw new UserError(
      `${where} has no tokenizer strata reads (a HuggingFace folder needs tokenizer.json; ` +
        `GGUF tokenizers are not read yet): give the prompt as --prompt-ids`,
    );
  if (prompt.length === 0) throw new UserError('the prompt is empty');
  return { prompt, tok, template, batch: null };
}
