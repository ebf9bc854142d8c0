// Values the engine hands out or exports for reading but relies on itself
// (its algorithm tables, what a backend reports): frozen all the way down, so
// a caller's write fails instead of changing the engine's rules.

export function frozen<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) frozen(v);
    Object.freeze(value);
  }
  return value;
}
