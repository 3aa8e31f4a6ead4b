/** "did you mean ...?" suggestions for misspelt names, by edit distance. */

/** Optimal-string-alignment distance: Levenshtein plus adjacent transpositions ('mamab' -> 'mamba' is 1). */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[][] = Array.from({ length: rows }, (_, i) =>
    Array.from({ length: cols }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        best = Math.min(best, d[i - 2]![j - 2]! + 1);
      }
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

/** Longer names get no suggestion: no one mistypes a name that long by one letter. */
const MAX_SUGGESTED_LENGTH = 64;

/**
 * The candidate closest to name, if it is close enough to be a plausible typo: one edit for short
 * names, two for names of five or more characters. Case differences count as free.
 */
export function closest(name: string, candidates: Iterable<string>): string | null {
  const limit = name.length >= 5 ? 2 : 1;
  let best: string | null = null;
  let bestDistance = Infinity;
  // The distance costs length × length: a megabyte-long name must not take minutes to misspell.
  if (name.length > MAX_SUGGESTED_LENGTH) return null;
  for (const c of candidates) {
    // Names whose lengths differ by more than the limit cannot be within it.
    if (c === name || Math.abs(c.length - name.length) > limit) continue;
    const dist = editDistance(name.toLowerCase(), c.toLowerCase());
    // Between equally close candidates, a same-length one reads as the likelier typo
    // ('relu3' -> 'relu2' rather than 'relu').
    const better =
      dist < bestDistance ||
      (dist === bestDistance && c.length === name.length && best?.length !== name.length);
    if (better && dist <= limit && dist < name.length) {
      best = c;
      bestDistance = dist;
    }
  }
  return best;
}

/** ", did you mean 'x'?" when a close candidate exists, else ''. */
export function didYouMean(name: string, candidates: Iterable<string>): string {
  const c = closest(name, candidates);
  return c === null ? '' : `, did you mean '${c}'?`;
}
