// Watches the byte arrays senv makes, for tests that check copies of secrets
// are zeroized: every `new Uint8Array(...)` (senv's modules look the global up
// at each call) and every `slice()` (made through the species constructor,
// which a proxy of the global never sees).

/** The constructor before any spy replaced it. */
export const RealUint8Array = Uint8Array;
const RealArrayBuffer = ArrayBuffer;
const madeBuffers = new WeakSet<ArrayBuffer>();

/** Whether `from` is an ArrayBuffer made while a spy was on (secretBytes makes its arrays over one). */
export function isFreshBuffer(from: unknown): boolean {
  return from instanceof RealArrayBuffer && madeBuffers.has(from);
}

export interface Uint8ArraySpy {
  /** Every array made while the spy was on, in order. */
  readonly made: Uint8Array[];
  /** Puts the constructor and slice() back. */
  stop(): void;
}

/** Starts recording; `onMake` sees each array with what it was made from (the first constructor argument, or the array sliced). */
export function spyUint8Arrays(onMake?: (made: Uint8Array, from: unknown) => void): Uint8ArraySpy {
  const made: Uint8Array[] = [];
  const record = (a: Uint8Array, from: unknown) => {
    made.push(a);
    onMake?.(a, from);
  };
  globalThis.ArrayBuffer = new Proxy(RealArrayBuffer, {
    construct(target, args, newTarget) {
      const b = Reflect.construct(target, args, newTarget === globalThis.ArrayBuffer ? target : newTarget) as ArrayBuffer;
      madeBuffers.add(b);
      return b;
    },
  });
  globalThis.Uint8Array = new Proxy(RealUint8Array, {
    construct(target, args, newTarget) {
      const a = Reflect.construct(target, args, newTarget === globalThis.Uint8Array ? target : newTarget) as Uint8Array;
      record(a, args[0]);
      return a;
    },
  });
  const slice = RealUint8Array.prototype.slice;
  RealUint8Array.prototype.slice = function (this: Uint8Array, start?: number, end?: number) {
    const a = slice.call(this, start, end);
    record(a, this);
    return a;
  };
  return {
    made,
    stop() {
      globalThis.Uint8Array = RealUint8Array;
      globalThis.ArrayBuffer = RealArrayBuffer;
      RealUint8Array.prototype.slice = slice;
    },
  };
}

/** Runs `call` (synchronous) with the spy on; the arrays made meanwhile from what `pick` accepts. */
export function arraysMade(pick: (from: unknown) => boolean, call: () => void): Uint8Array[] {
  const picked: Uint8Array[] = [];
  const spy = spyUint8Arrays((made, from) => {
    if (pick(from)) picked.push(made);
  });
  try {
    call();
  } finally {
    spy.stop();
  }
  return picked;
}

/** Runs `fn` (which may be asynchronous) with the spy on; the arrays made meanwhile and fn's result. */
export async function arraysMadeBy<T>(fn: () => T | Promise<T>): Promise<{ made: Uint8Array[]; result: T }> {
  const spy = spyUint8Arrays();
  try {
    return { made: spy.made, result: await fn() };
  } finally {
    spy.stop();
  }
}
