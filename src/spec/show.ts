/** Values as messages quote them ("got ..."). */

/**
 * JSON text of a value, except that NaN and ±Infinity (YAML's .nan/.inf, Python's bare NaN)
 * read as themselves rather than as JSON.stringify's null; 'nothing' for undefined.
 */
export function showValue(v: unknown): string {
  if (v === undefined) return 'nothing';
  const text = JSON.stringify(v, (_k, x: unknown) =>
    typeof x === 'number' && !Number.isFinite(x) ? `\u0000${x}\u0000` : x,
  );
  return text === undefined ? String(v) : text.replace(/"\\u0000(.*?)\\u0000"/g, '$1');
}
