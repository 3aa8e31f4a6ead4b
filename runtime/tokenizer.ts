/**
 * The default tokenizer: UTF-8 bytes are token ids 0..255. Any model with
 * vocab ≥ 256 can run text through it; ids ≥ 256 have no text and are shown as
 * U+FFFD. Streaming decode keeps multi-byte characters whole across tokens.
 */
export interface Tokenizer {
  encode(text: string): number[];
  /** Returns the text completed by this token (possibly empty mid-character). */
  decodeStream(): (token: number) => string;
  decode(tokens: number[]): string;
}

export function byteTokenizer(vocab: number): Tokenizer {
  if (vocab < 256) throw new Error(`the byte tokenizer needs vocab >= 256, the model has ${vocab}`);
  return {
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
