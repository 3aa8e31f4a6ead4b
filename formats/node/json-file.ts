/**
 * A JSON file that must hold an object (tokenizer.json, tokenizer_config.json, config.json),
 * read with errors that name the file and never quote its contents (formats/json-error.ts).
 */
import { readFile } from 'node:fs/promises';
import { jsonSyntaxError } from '../json-error.ts';

export interface JsonFileOptions {
  /** How errors name the file (default: its path), e.g. relative to a bundle folder. */
  shownAs?: string;
  /** The error class to throw (default Error), e.g. the runtime's BundleError. */
  error?: new (message: string) => Error;
}

export async function readJsonObject(
  path: string,
  { shownAs = path, error = Error }: JsonFileOptions = {},
): Promise<Record<string, unknown>> {
  let value: unknown;
  try {
    value = JSON.parse(await readFile(path, 'utf8'));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new error(`${shownAs}: ${code ? `unreadable (${code})` : jsonSyntaxError(e)}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new error(`${shownAs}: not a JSON object`);
  return value as Record<string, unknown>;
}
