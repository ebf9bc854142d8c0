// Memory ownership and error reporting shared by every algorithm in the core.
// The host owns nothing inside linear memory: it borrows the I/O window and
// blocks it allocated with mem_alloc, and hands contexts back with ctx_free.

export const ABI_VERSION: u32 = 1;

// Status codes returned (as negative i32) by every export that can fail.
export const ERR_ALGORITHM: i32 = -1; // unknown or unsupported algorithm id
export const ERR_LENGTH: i32 = -2; // a length (key, nonce, tag, data) is not allowed
export const ERR_CONTEXT: i32 = -3; // null, released or wrong-kind context
export const ERR_MEMORY: i32 = -4; // reserved: an allocation that fails traps instead
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

// The largest block handed out; a larger request is refused with 0. TLSF can
// make blocks up to 1 GiB, but by its code it does not round requests of half
// that or more up to a size class, so one can be given a free block smaller
// than asked (measured with 1 GiB requests: blocks past the end of memory and
// over each other, then live contexts overwritten; clean up to 512 MiB).
const MAX_BLOCK: usize = 1 << 28;

export function mem_alloc(size: usize): usize {
  if (size == 0) size = 1;
  if (size > MAX_BLOCK) return 0;
  const p = heap.alloc(size);
  inUse += size;
  return p;
}

// Zeroizes `size` bytes before returning the block: callers pass the size they allocated.
// A range outside memory cannot be a block: ignored, so the allocator and the
// count of bytes in use stay as they were.
export function mem_free(ptr: usize, size: usize): void {
  if (ptr == 0 || !inMemory(ptr, size)) return;
  inUse -= max<usize>(size, 1);
  memory.fill(ptr, 0, size);
  heap.free(ptr);
}

// A void export has no status to report a range outside memory with: it does nothing.
export function zeroize(ptr: usize, size: usize): void {
  if (!inMemory(ptr, size)) return;
  memory.fill(ptr, 0, size);
}

// Allocates a zeroed context of `size` bytes tagged with `kind`.
export function ctxNew(kind: u32, size: u32): usize {
  const p = heap.alloc(size);
  inUse += size;
  memory.fill(p, 0, size);
  store<u32>(p, kind, CTX_KIND);
  store<u32>(p, size, CTX_SIZE);
  return p;
}

// Whether [ptr, ptr + len) lies in linear memory, with len small enough to
// come back as a non-negative i32: a range past the end is refused before
// anything is written, instead of trapping half way through.
export function inMemory(ptr: usize, len: usize): bool {
  return len <= <usize>i32.MAX_VALUE && <u64>ptr + <u64>len <= (<u64>memory.size() << 16);
}

// inMemory for `count` items of `size` bytes: the product is taken in 64
// bits, so a huge count cannot wrap round to a small range.
export function itemsInMemory(ptr: usize, count: u64, size: u64): bool {
  const len = count * size;
  return len <= <u64>i32.MAX_VALUE && inMemory(ptr, <usize>len);
}

// The kind of the context at ctx; 0 (no kind) for a handle outside memory.
@inline export function ctxKind(ctx: usize): u32 {
  return inMemory(ctx, CTX_HEADER) ? load<u32>(ctx, CTX_KIND) : 0;
}

// Every kind is below 0x1000; a freed block holds the allocator's free-list
// pointers (or zeros) where the kind was, so a second ctx_free sees no kind.
const MAX_KIND: u32 = 0x1000;

// Frees a context made by a *_create call. Null, a handle already freed, one
// outside the heap (the static one-shot slots, the I/O window) or one whose
// header does not describe a context are ignored: trusting them would
// corrupt the allocator.
export function ctx_free(ctx: usize): void {
  if (ctx < __heap_base || !inMemory(ctx, CTX_HEADER)) return;
  const kind = load<u32>(ctx, CTX_KIND);
  const size = load<u32>(ctx, CTX_SIZE);
  if (kind == 0 || kind >= MAX_KIND || size < CTX_HEADER || !inMemory(ctx, size)) return;
  inUse -= size;
  memory.fill(ctx, 0, size);
  heap.free(ctx);
}

// Replaces AssemblyScript's abort import: the module imports nothing, so any
// host can instantiate it; a broken invariant traps instead of calling out.
export function trap(message: usize, fileName: usize, line: u32, column: u32): void {
  unreachable();
}
