/**
 * Streams a GGUF file to disk (Node): the header first (it needs only the tensors' sizes), then
 * each tensor's bytes in header order, padded to the alignment. Nothing but the tensor in hand is
 * held in memory, so a model of many GB is written tensor by tensor. A tensor out of order, of
 * the wrong size, or missing at close is an error naming it.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { alignUp, ggufHeader, type GgufKv, type GgufTensorInfo } from '../gguf-write.ts';

export class GgufFileWriter {
  private next = 0;
  private fd: number | null;
  private written: number;

  constructor(
    readonly path: string,
    metadata: Readonly<Record<string, GgufKv>>,
    private readonly tensors: readonly GgufTensorInfo[],
  ) {
    const header = ggufHeader(metadata, tensors);
    this.fd = openSync(path, 'w');
    this.written = 0;
    this.put(header);
  }

  private put(b: Uint8Array): void {
    if (this.fd === null) throw new Error(`${this.path}: already closed`);
    let done = 0;
    while (done < b.length) done += writeSync(this.fd, b, done, b.length - done);
    this.written += b.length;
  }

  /** The next tensor's bytes (the name is checked against the header's order). */
  write(name: string, data: Uint8Array): void {
    const t = this.tensors[this.next];
    if (!t) throw new Error(`${this.path}: tensor '${name}' is beyond the header's list`);
    if (t.name !== name)
      throw new Error(`${this.path}: tensor '${name}' written where '${t.name}' comes next`);
    if (data.length !== t.byteLength)
      throw new Error(
        `${this.path}: tensor '${name}' has ${data.length} bytes; the header says ${t.byteLength}`,
      );
    this.put(data);
    const pad = alignUp(data.length) - data.length;
    if (pad) this.put(new Uint8Array(pad));
    this.next++;
  }

  /** Closes the file; throws if a tensor of the header was not written. Returns its size. */
  close(): number {
    if (this.fd === null) return this.written;
    closeSync(this.fd);
    this.fd = null;
    if (this.next !== this.tensors.length)
      throw new Error(
        `${this.path}: closed after ${this.next} of ${this.tensors.length} tensors (next '${this.tensors[this.next].name}')`,
      );
    return this.written;
  }
}
