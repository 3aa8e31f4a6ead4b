/**
 * Chat templates: the Jinja `chat_template` of tokenizer_config.json rendered with
 * @huggingface/jinja (Hugging Face's JS Jinja for exactly these templates), given what
 * transformers' apply_chat_template gives a template: the messages, add_generation_prompt and the
 * tokenizer's special tokens (bos_token, eos_token, …) as strings.
 */
import { Template } from '@huggingface/jinja';

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export type ChatTemplate = (messages: ChatMessage[], addGenerationPrompt: boolean) => string;

/** A special token as tokenizer_config.json writes it: a string, or an AddedToken object. */
function tokenText(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (
    typeof v === 'object' &&
    v !== null &&
    typeof (v as { content?: unknown }).content === 'string'
  )
    return (v as { content: string }).content;
  return undefined;
}

const SPECIAL_KEYS = ['bos_token', 'eos_token', 'unk_token', 'pad_token', 'sep_token', 'cls_token'];

/** The model's chat template, or null when tokenizer_config.json has none. */
export function chatTemplate(config: object, where: string): ChatTemplate | null {
  let source = (config as { chat_template?: unknown }).chat_template;
  // Some configs list named templates; the one named 'default' is what transformers uses.
  if (Array.isArray(source)) {
    source = source.find((t: { name?: unknown }) => t?.name === 'default')?.template;
  }
  if (source === undefined || source === null) return null;
  if (typeof source !== 'string') throw new Error(`${where}: chat_template is not a string`);
  let template: Template;
  try {
    template = new Template(source);
  } catch (e) {
    throw new Error(`${where}: chat_template does not parse: ${(e as Error).message}`);
  }
  const specials: Record<string, string> = {};
  for (const k of SPECIAL_KEYS) {
    const t = tokenText((config as Record<string, unknown>)[k]);
    if (t !== undefined) specials[k] = t;
  }
  return (messages, addGenerationPrompt) =>
    template.render({ ...specials, messages, add_generation_prompt: addGenerationPrompt });
}
