// The resources of an SE that carry an expirationTime, in the order they fall due.

/**
 * A min-heap of (expirationTime, item) with lazy removal: a changed or
 * removed time leaves its old entry in the heap, skipped when it surfaces,
 * so that a sweep costs O(log n) a due item rather than a scan of every item
 * with a time (an IN-CSE with 100k resources an hour or a day away, and one
 * falling due every few ms, spent most of a core on scans).
 */
export class ExpiryQueue<T> {
  readonly #times = new Map<T, number>();
  #heap: { at: number; item: T }[] = [];

  /** The earliest time in the queue (or one removed since: a sweep then finds nothing due). */
  get next(): number {
    return this.#heap.length ? this.#heap[0]!.at : Infinity;
  }

  get size(): number {
    return this.#times.size;
  }

  /** Sets, moves (`at` another time) or removes (`at` undefined) the item's time. */
  set(item: T, at: number | undefined): void {
    if (at === undefined) return this.delete(item);
    if (this.#times.get(item) === at) return;
    this.#times.set(item, at);
    this.#push({ at, item });
    this.#prune();
  }

  delete(item: T): void {
    this.#times.delete(item);
    this.#prune();
  }

  /**
   * Takes out every item due at `now`, earliest first. They leave the queue:
   * a caller that cannot remove them sets their times again.
   */
  due(now: number): T[] {
    const out: T[] = [];
    while (this.#heap.length && this.#heap[0]!.at <= now) {
      const { at, item } = this.#pop();
      if (this.#times.get(item) !== at) continue;
      this.#times.delete(item);
      out.push(item);
    }
    // A removed item's entry on top would make `next` wake a sweep for nothing.
    while (this.#heap.length && this.#times.get(this.#heap[0]!.item) !== this.#heap[0]!.at) this.#pop();
    return out;
  }

  /**
   * Entries of times since moved or removed would pile up while they lie in
   * the future (an et extended again and again; resources deleted, which
   * their entries would keep in memory until their old times came): rebuilt
   * from the live times when they outnumber them, amortized O(1).
   */
  #prune(): void {
    if (this.#heap.length < 2 * this.#times.size + 64) return;
    this.#heap = [...this.#times].map(([item, at]) => ({ at, item }));
    for (let i = (this.#heap.length >> 1) - 1; i >= 0; i--) this.#down(i);
  }

  #push(e: { at: number; item: T }): void {
    const h = this.#heap;
    let i = h.push(e) - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p]!.at <= e.at) break;
      h[i] = h[p]!;
      i = p;
    }
    h[i] = e;
  }

  #pop(): { at: number; item: T } {
    const h = this.#heap;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length) {
      h[0] = last;
      this.#down(0);
    }
    return top;
  }

  #down(i: number): void {
    const h = this.#heap;
    const e = h[i]!;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= h.length) break;
      if (c + 1 < h.length && h[c + 1]!.at < h[c]!.at) c++;
      if (h[c]!.at >= e.at) break;
      h[i] = h[c]!;
      i = c;
    }
    h[i] = e;
  }
}
