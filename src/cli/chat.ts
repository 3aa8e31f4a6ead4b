/**
 * `strata run --chat`: a multi-turn conversation on one sequence. Each turn renders the whole
 * conversation with the model's chat template and feeds only the text after what the sequence
 * has already consumed (the previous rendering plus the reply, its EOS included), so the KV
 * cache and recurrent state carry the history and nothing seen is encoded again. Should a
 * template render the history differently from what was fed, the sequence restarts from the
 * full rendering, and says so.
 */
import type { Sequence } from '../../runtime/model.ts';
import type { SamplingParams } from '../../codegen/kernel-ir.ts';
import type { Tokenizer } from '../../runtime/tokenizer.ts';
import type { ChatMessage, ChatTemplate } from '../../runtime/chat.ts';
import { tokenTimer } from './speed.ts';

export interface ChatOptions {
  system?: string;
  maxTokens: number;
  sampling: SamplingParams;
  ignoreEos: boolean;
  /** Streamed reply text. */
  write: (s: string) => void;
  /** Notes for the user (stderr). */
  note: (s: string) => void;
  /** Called before each turn's input is awaited (an interactive prompt). */
  ready?: () => void;
}

export async function chatLoop(
  seq: Sequence,
  tok: Tokenizer,
  render: ChatTemplate,
  lines: AsyncIterable<string>,
  opts: ChatOptions,
): Promise<void> {
  const messages: ChatMessage[] = opts.system ? [{ role: 'system', content: opts.system }] : [];
  const stop = opts.ignoreEos ? [] : [...tok.eos];
  let fed = '';
  opts.ready?.();
  for await (const line of lines) {
    if (line.trim() === '') {
      opts.ready?.();
      continue;
    }
    messages.push({ role: 'user', content: line });
    const text = render(messages, true);
    let ids: number[];
    if (text.startsWith(fed)) {
      ids = tok.encode(text.slice(fed.length), { special: false });
    } else {
      opts.note('the chat template rendered the history differently; starting the sequence over');
      seq.reset();
      ids = tok.encode(text, { special: false });
    }
    if (seq.pos + ids.length >= seq.capacity) {
      throw new Error(
        `the conversation needs ${seq.pos + ids.length} KV positions, over the capacity ${seq.capacity} (recompile with a larger --capacity)`,
      );
    }
    const reply: number[] = [];
    const decode = tok.decodeStream();
    const timing = tokenTimer();
    for await (const t of seq.generate(ids, {
      maxTokens: opts.maxTokens,
      stopTokens: stop,
      ...opts.sampling,
    })) {
      timing.token();
      reply.push(t);
      if (!stop.includes(t)) opts.write(decode(t));
    }
    opts.write('\n');
    opts.note(timing.line(ids.length));
    // Every yielded token, the EOS too, has been consumed by the sequence.
    fed = text + tok.decode(reply);
    const content = tok.decode(reply.filter((t) => !stop.includes(t)));
    messages.push({ role: 'assistant', content });
    opts.ready?.();
  }
}
