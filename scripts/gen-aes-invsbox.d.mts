// Types of scripts/gen-aes-invsbox.mjs for the TypeScript tests.
/** The text of assembly/aes-invsbox.generated.ts, derived from the forward circuit in `source` (assembly/aes-sbox.ts by default); throws if either circuit is wrong. */
export declare function generateInvSbox(source?: string): string;
