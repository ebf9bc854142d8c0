// Where SE-resources are kept between runs. The engine calls these after a
// change succeeded and before it answers, so an acknowledged write is
// durable once the call resolved.
import type { SeHost } from './host.ts';
import type { Resource } from './resource.ts';

export interface Persistence {
  /** A unique ID for the software SE of this data directory, the same on every run. */
  uniqueId(kind: string): Promise<string>;
  /** Rebuilds the host's resource tree from what was stored for its M2M-SE-ID. */
  load(host: SeHost): Promise<void>;
  /** Stores the resource's state (and its children's, for a new registration). */
  put(host: SeHost, res: Resource, withChildren: boolean): Promise<void>;
  /** Stores a chunk appended to the resource's append attribute. */
  append(host: SeHost, res: Resource, attr: string, chunk: Uint8Array): Promise<void>;
  remove(host: SeHost, ris: readonly string[]): Promise<void>;
  close(): Promise<void>;
}
