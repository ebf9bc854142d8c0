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

// Context header: every context handle points at [kind u32][size u16][seal u16].
// The seal is derived from the handle itself, so a stale or miscomputed
// handle (into a freed block, the middle of another context, a hash context
// embedded in an HMAC one) is not taken for a context: it would need the
// right kind and the seal of that very address. ctx_free trusts only this
// header, so it can zeroize any context type.
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

// Every block carries a 16-byte header before the pointer handed out:
// [seal u32][size u32], the seal derived from the pointer (with another
// constant than a context's). mem_free believes only a pointer whose header
// is intact and whose size is the one allocated, so a second free, a free of
// the I/O window, of a context or of a pointer inside a block is ignored.
const BLOCK_HEADER: usize = 16;

export function mem_alloc(size: usize): usize {
  if (size == 0) size = 1;
  if (size > MAX_BLOCK) return 0;
  const p = heap.alloc(size + BLOCK_HEADER) + BLOCK_HEADER;
  store<u32>(p - BLOCK_HEADER, blockSeal(p));
  store<u32>(p - BLOCK_HEADER, <u32>size, 4);
  inUse += size;
  return p;
}

// Zeroizes the block (pass the size you allocated) before returning it.
// Anything but a live block of that size is ignored: the allocator and the
// count of bytes in use stay as they were.
export function mem_free(ptr: usize, size: usize): void {
  if (size == 0) size = 1;
  if (ptr < __heap_base + BLOCK_HEADER || !inMemory(ptr, size)) return;
  const h = ptr - BLOCK_HEADER;
  if (load<u32>(h) != blockSeal(ptr) || <usize>load<u32>(h, 4) != size) return;
  inUse -= size;
  memory.fill(h, 0, size + BLOCK_HEADER);
  heap.free(h);
}

// A void export has no status to report a range it may not write with: it does nothing.
export function zeroize(ptr: usize, size: usize): void {
  if (!writable(ptr, size)) return;
  memory.fill(ptr, 0, size);
}

// Odd multipliers spread the address bits; the top bit is set so that zeros
// (a freed, zeroized block) never match.
@inline function ctxSeal(p: usize): u32 {
  return ((<u32>p * 0x9E3779B1) >> 17) | 0x8000;
}

@inline function blockSeal(p: usize): u32 {
  return (<u32>p * 0x85EBCA6B) | 0x80000000;
}

// Writes the sealed header of a `kind` context of `size` (below 64 KiB)
// bytes at p: a heap context, or one of the static one-shot slots the
// exports hand out.
export function ctxHeader(p: usize, kind: u32, size: u32): usize {
  store<u32>(p, kind, CTX_KIND);
  store<u32>(p, size | (ctxSeal(p) << 16), CTX_SIZE);
  return p;
}

// Allocates a zeroed context of `size` bytes tagged with `kind`.
export function ctxNew(kind: u32, size: u32): usize {
  const p = heap.alloc(size);
  inUse += size;
  memory.fill(p, 0, size);
  return ctxHeader(p, kind, size);
}

// Whether [ptr, ptr + len) lies in linear memory, with len small enough to
// come back as a non-negative i32: a range past the end is refused before
// anything is written, instead of trapping half way through.
export function inMemory(ptr: usize, len: usize): bool {
  return len <= <usize>i32.MAX_VALUE && <u64>ptr + <u64>len <= (<u64>memory.size() << 16);
}

// The allocator keeps its own state (TLSF's root: the free lists) between
// __heap_base and the first block: the first block the instance allocates
// marks where blocks begin. Taken at start-up, before any other allocation.
const HEAP_FLOOR: usize = firstBlock();

function firstBlock(): usize {
  const p = heap.alloc(1);
  heap.free(p);
  return p;
}

// inMemory for a range a call writes: the I/O window or the heap's blocks,
// never the module's static data (tables, the SHA-2 initial values, one-shot
// slots) nor the allocator's root, which a stray output would corrupt for
// every later call.
export function writable(ptr: usize, len: usize): bool {
  if (!inMemory(ptr, len)) return false;
  return len == 0 || ptr >= HEAP_FLOOR || (ptr >= IO && ptr + len <= IO + <usize>IO_SIZE);
}

// Whether the ranges [a, a + al) and [b, b + bl) share a byte (both in memory: no wrap): an
// output written over an input it reads again later would change what the input says.
@inline export function overlap(a: usize, al: usize, b: usize, bl: usize): bool {
  return al != 0 && bl != 0 && a < b + bl && b < a + al;
}

// inMemory for `count` items of `size` bytes: the product is taken in 64
// bits, so a huge count cannot wrap round to a small range.
export function itemsInMemory(ptr: usize, count: u64, size: u64): bool {
  const len = count * size;
  return len <= <u64>i32.MAX_VALUE && inMemory(ptr, <usize>len);
}

// The kind of the context a handle names; 0 (no kind) for a handle outside
// memory or whose header is not sealed for its address. Internal code reads
// the kind of contexts it built (embedded ones included) with kindAt.
@inline export function ctxKind(ctx: usize): u32 {
  if (!inMemory(ctx, CTX_HEADER) || load<u32>(ctx, CTX_SIZE) >> 16 != ctxSeal(ctx)) return 0;
  return load<u32>(ctx, CTX_KIND);
}

@inline export function kindAt(ctx: usize): u32 {
  return load<u32>(ctx, CTX_KIND);
}

// Frees a context made by a *_create call. Null, a handle already freed, one
// outside the heap (the static one-shot slots, the I/O window) or one whose
// header does not describe a context are ignored: trusting them would
// corrupt the allocator.
export function ctx_free(ctx: usize): void {
  if (ctx < __heap_base || ctxKind(ctx) == 0) return;
  const size = <usize>(load<u32>(ctx, CTX_SIZE) & 0xffff);
  inUse -= size;
  memory.fill(ctx, 0, size);
  heap.free(ctx);
}

// Replaces AssemblyScript's abort import: the module imports nothing, so any
// host can instantiate it; a broken invariant traps instead of calling out.
export function trap(message: usize, fileName: usize, line: u32, column: u32): void {
  unreachable();
}
