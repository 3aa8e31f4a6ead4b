/**
 * Delta debugging after fast-check's shrink: fast-check shrinks the edits and generated
 * structure, but a mutated real spec still carries the rest of that spec. Removing whole lines,
 * then tokens, while the failure keeps its signature leaves a reproducer a person can read.
 */
import { tokenize } from './mutate.ts';
import type { FuzzInput, Outcome } from './types.ts';

export interface MinimizeOptions {
  /** Most inputs to run; a timeout signature costs a whole budget per try. */
  maxTries: number;
  deadline: number;
}

export async function minimize(
  input: FuzzInput,
  signature: string,
  run: (input: FuzzInput) => Promise<Outcome>,
  opts: MinimizeOptions,
): Promise<FuzzInput> {
  let tries = 0;
  const holds = async (text: string): Promise<boolean> => {
    if (tries >= opts.maxTries || Date.now() > opts.deadline) return false;
    tries++;
    const o = await run({ ...input, text });
    return o.status === 'failure' && o.signature === signature;
  };
  let text = input.text;
  const splits = [(t: string) => t.split(/(?<=\n)/), tokenize];
  for (const split of splits) {
    let chunks = split(text);
    let n = 2;
    while (chunks.length >= 2) {
      const size = Math.ceil(chunks.length / n);
      let reduced = false;
      for (let i = 0; i < n && i * size < chunks.length; i++) {
        const candidate = [...chunks.slice(0, i * size), ...chunks.slice((i + 1) * size)];
        if (candidate.length && (await holds(candidate.join('')))) {
          chunks = candidate;
          n = Math.max(n - 1, 2);
          reduced = true;
          break;
        }
      }
      if (!reduced) {
        if (n >= chunks.length || tries >= opts.maxTries || Date.now() > opts.deadline) break;
        n = Math.min(n * 2, chunks.length);
      }
    }
    text = chunks.join('');
  }
  return { ...input, text };
}
