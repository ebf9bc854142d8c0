// Memory ownership and error reporting shared by every algorithm in the core.
// The host owns nothing inside linear memory: it borrows the I/O window and
// blocks it allocated with mem_alloc, and hands contexts back with ctx_free.

export const ABI_VERSION: u32 = 1;

// Status codes returned (as negative i32) by every export that can fail.
export const ERR_ALGORITHM: i32 = -1; // unknown or unsupported algorithm id
export const ERR_LENGTH: i32 = -2; // a length (key, nonce, tag, data) is not allowed
export const ERR_CONTEXT: i32 = -3; // null, released or wrong-kind context
export const ERR_MEMORY: i32 = -4; // the allocator could not satisfy a request
export const ERR_AUTH: i32 = -5; // tag or MAC verification failed
export const ERR_PADDING: i32 = -6; // padding malformed on decryption
export const ERR_STATE: i32 = -7; // call not valid in the context's current state
export const ERR_INVALID: i32 = -8; // value out of range (point not on curve, scalar 0 …)

// The I/O window: a fixed region the host fills with input and reads output
// from, so the common small call needs no allocation at all.
export const IO_SIZE: u32 = 65536;
const IO: usize = memory.data(IO_SIZE as i32, 16);

// Context header: every context handle points at [kind u32][size u32].
// ctx_free trusts only this header, so it can zeroize any context type.
export const CTX_KIND: usize = 0;
export const CTX_SIZE: usize = 4;
export const CTX_HEADER: usize = 8;

export function abi_version(): u32 {
  return ABI_VERSION;
}

// Bit 0: this build uses SIMD (v128); bit 1: Relaxed SIMD.
export function features(): u32 {
  return (ASC_FEATURE_SIMD ? 1 : 0) | (ASC_FEATURE_RELAXED_SIMD ? 2 : 0);
}

export function io_ptr(): usize {
  return IO;
}

export function io_size(): u32 {
  return IO_SIZE;
}

// Bytes held by blocks and contexts the host has not released yet: what a
// leak test watches (internal scratch that a call frees before returning is
// not counted).
let inUse: usize = 0;

export function mem_in_use(): usize {
  return inUse;
}

export function mem_alloc(size: usize): usize {
  if (size == 0) size = 1;
  inUse += size;
  return heap.alloc(size);
}

// Zeroizes `size` bytes before returning the block: callers pass the size they allocated.
export function mem_free(ptr: usize, size: usize): void {
  if (ptr == 0) return;
  inUse -= max<usize>(size, 1);
  memory.fill(ptr, 0, size);
  heap.free(ptr);
}

export function zeroize(ptr: usize, size: usize): void {
  memory.fill(ptr, 0, size);
}

// Allocates a zeroed context of `size` bytes tagged with `kind`.
export function ctxNew(kind: u32, size: u32): usize {
  inUse += size;
  const p = heap.alloc(size);
  memory.fill(p, 0, size);
  store<u32>(p, kind, CTX_KIND);
  store<u32>(p, size, CTX_SIZE);
  return p;
}

@inline export function ctxKind(ctx: usize): u32 {
  return load<u32>(ctx, CTX_KIND);
}

export function ctx_free(ctx: usize): void {
  if (ctx == 0) return;
  const size = load<u32>(ctx, CTX_SIZE);
  inUse -= size;
  memory.fill(ctx, 0, size);
  heap.free(ctx);
}

// Replaces AssemblyScript's abort import: the module imports nothing, so any
// host can instantiate it; a broken invariant traps instead of calling out.
export function trap(message: usize, fileName: usize, line: u32, column: u32): void {
  unreachable();
}
