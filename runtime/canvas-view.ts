/**
 * How a diffusion canvas is shown while it fills in: `strata run` prints it step by step, and the
 * web runtime (runtime/web.ts) hands it to the page's onCanvas. One rendering for both.
 */
import type { Tokenizer } from './tokenizer.ts';

/**
 * A canvas after a prompt of P tokens: masks as ░ in text (_ with `ids` or without a tokenizer),
 * committed tokens as text or ids; and the answer at the end.
 */
export function canvasView(P: number, maskId: number, o: { tok: Tokenizer | null; ids: boolean }) {
  const tok = o.ids ? null : o.tok;
  return {
    line(canvas: Uint32Array): string {
      const parts: string[] = [];
      for (let p = P; p < canvas.length; p++) {
        const t = canvas[p];
        if (t === maskId) parts.push(tok ? '░' : '_');
        else parts.push(tok ? tok.decode([t]) : String(t));
      }
      return parts.join(tok ? '' : ' ');
    },
    answer: (tokens: ArrayLike<number>): string =>
      tok ? tok.decode(Array.from(tokens)) : Array.from(tokens).join(' '),
  };
}
