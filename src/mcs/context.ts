// What a type's hooks see of the engine while one request is processed.
import type { SeHost } from './host.ts';

export interface Context {
  readonly host: SeHost;
  /** The request's From: the AE-ID or CSE-ID acting. */
  readonly originator: string;
  /** The request's time (ms since the epoch), one value for the whole request. */
  readonly now: number;
}
