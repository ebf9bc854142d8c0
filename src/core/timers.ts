// What the runtimes' timers can hold, for every layer that sets one.

/**
 * Longest delay setTimeout keeps: 2^31 - 1 ms, about 24.8 days, in Node,
 * Deno and browsers alike. A longer one fires at once (Node warns and takes
 * 1 ms), so a deadline further away needs another way.
 */
export const LONGEST_TIMER = 0x7fffffff;
