/** formats/node/json-file.ts: the one reader of JSON files that must hold an object. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readJsonObject } from '../../formats/node/json-file.ts';

class CustomError extends Error {}

describe('readJsonObject', () => {
  const dir = mkdtempSync(join(tmpdir(), 'strata-json-'));
  const file = (name: string, text: string) => {
    writeFileSync(join(dir, name), text);
    return join(dir, name);
  };

  it('reads an object', async () => {
    expect(await readJsonObject(file('ok.json', '{"a": [1, 2]}'))).toEqual({ a: [1, 2] });
  });

  it('refuses a value that is not an object, naming the file as asked', async () => {
    const p = file('list.json', '[1, 2]');
    await expect(readJsonObject(p, { shownAs: 'bundle/list.json' })).rejects.toThrow(
      /^bundle\/list\.json: not a JSON object$/,
    );
  });

  it('names the syntax error without quoting the text, in the class asked for', async () => {
    const p = file('bad.json', '{"secret": swordfish}');
    const err = await readJsonObject(p, { error: CustomError }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CustomError);
    expect(String(err)).toMatch(/bad\.json: not valid JSON/);
    expect(String(err)).not.toContain('swordfish');
  });

  it('says a missing file is unreadable', async () => {
    await expect(readJsonObject(join(dir, 'none.json'))).rejects.toThrow(
      /none\.json: unreadable \(ENOENT\)/,
    );
  });
});
