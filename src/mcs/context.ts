// What a type's hooks see of the engine while one request is processed.
import type { SeHost } from './host.ts';

export interface Context {
  readonly host: SeHost;
  /** The request's From: the AE-ID or CSE-ID acting. */
  readonly originator: string;
  /** The largest byte value the engine holds (its maxDataSize option). */
  readonly maxData: number;
  /** The request's time (ms since the epoch), one value for the whole request. */
  readonly now: number;
  /**
   * What the request does beyond the resource it changes and cannot take
   * back (dropping a stream opened with old parameters, rebooting): run in
   * order once its change is durable and applied, never when it fails.
   */
  readonly effects: (() => void | Promise<void>)[];
}
