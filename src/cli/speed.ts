/** How fast a run went: time to the first token, and the decode rate after it. */

export interface TokenTimer {
  /** A token came out (call as each one is yielded, the EOS included: the model produced it). */
  token(): void;
  /**
   * "N tokens; first token after X ms (prompt of P tokens), then R tokens/s": the first token's
   * time covers the prefill of the prompt; the rate counts tokens 2..N over the time between
   * the first token and the last.
   */
  line(promptTokens: number): string;
}

/** A timer started now. */
export function tokenTimer(now: () => number = () => performance.now()): TokenTimer {
  const t0 = now();
  let first = 0;
  let last = 0;
  let tokens = 0;
  return {
    token() {
      tokens++;
      if (tokens === 1) first = now() - t0;
      else last = now() - t0;
    },
    line(promptTokens) {
      const head = `${tokens} token${tokens === 1 ? '' : 's'}; first token after ${first.toFixed(0)} ms (prompt of ${promptTokens} tokens)`;
      if (tokens < 2 || last <= first) return head;
      const rate = ((tokens - 1) * 1000) / (last - first);
      return `${head}, then ${rate.toFixed(rate >= 100 ? 0 : 1)} tokens/s`;
    },
  };
}
