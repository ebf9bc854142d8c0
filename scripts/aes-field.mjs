// GF(2^8) with the AES polynomial and the FIPS 197 S-box, for the
// generators that derive and check the core's AES circuits and tables.
export const gmul = (a, b) => {
  let r = 0;
  for (; b; b >>= 1) {
    if (b & 1) r ^= a;
    a <<= 1;
    if (a & 0x100) a ^= 0x11b;
  }
  return r;
};
export const ginv = (a) => (a === 0 ? 0 : [...Array(256).keys()].find((b) => gmul(a, b) === 1));
export const rotl8 = (x, n) => ((x << n) | (x >> (8 - n))) & 0xff;
/** The linear part of the S-box's affine map (FIPS 197 5.1.1). */
export const affine = (x) => x ^ rotl8(x, 1) ^ rotl8(x, 2) ^ rotl8(x, 3) ^ rotl8(x, 4);
export const SBOX = [...Array(256).keys()].map((x) => affine(ginv(x)) ^ 0x63);
export const INV_SBOX = new Array(256);
SBOX.forEach((s, x) => (INV_SBOX[s] = x));
