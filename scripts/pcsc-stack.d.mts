// Types of scripts/pcsc-stack.mjs for the TypeScript tests and benchmarks.
export declare const SLOTS: number;
export declare const READER_PREFIX: string;

export type StackResult =
  | {
      ok: true;
      /** pcscd was started by the stack (and stops with its last user). */
      owned: boolean;
      /** false: a running pcscd without the TCP_NODELAY shim, ~44 ms per APDU with vpcd 0.8. */
      latencyFixed: boolean;
      release(): Promise<void>;
    }
  | { ok: false; reason: string };

export declare function acquireStack(opts?: { log?: (line: string) => void; manual?: boolean }): Promise<StackResult>;

export interface SlotLease {
  slot: number;
  port: number;
  reader: string;
  release(): Promise<void>;
}

export declare function acquireSlot(opts?: { timeoutMs?: number }): Promise<SlotLease>;
