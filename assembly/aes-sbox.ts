// The AES S-box as a Boolean circuit over bit planes, generic over the plane
// word (u32 for the key schedule, u64 for the scalar build, v128 for the SIMD
// build): every lane of every plane goes through the same gates, so there is
// no table and no branch that depends on the data.
//
// Planes live in memory at q: plane b (b = 0 for the least significant bit of
// each byte) holds bit b of every byte being substituted.

@inline export function X<T>(a: T, b: T): T {
  if (isVector<T>()) return v128.xor(a, b);
  else return a ^ b;
}

@inline export function A<T>(a: T, b: T): T {
  if (isVector<T>()) return v128.and(a, b);
  else return a & b;
}

@inline export function N<T>(a: T): T {
  if (isVector<T>()) return v128.not(a);
  else return ~a;
}

@inline function ld<T>(q: usize, b: usize): T {
  return load<T>(q + b * sizeof<T>());
}

@inline function st<T>(q: usize, b: usize, v: T): void {
  store<T>(q + b * sizeof<T>(), v);
}

// Forward S-box: the circuit of Boyar and Peralta (IACR eprint 2009/191,
// 32 AND and 83 XOR/XNOR gates), whose inputs U0..U7 and outputs S0..S7 run
// from the most significant bit down.
export function sboxPlanes<T>(q: usize): void {
  const u0 = ld<T>(q, 7), u1 = ld<T>(q, 6), u2 = ld<T>(q, 5), u3 = ld<T>(q, 4);
  const u4 = ld<T>(q, 3), u5 = ld<T>(q, 2), u6 = ld<T>(q, 1), u7 = ld<T>(q, 0);

  // Top linear layer.
  const y14 = X<T>(u3, u5), y13 = X<T>(u0, u6), y9 = X<T>(u0, u3), y8 = X<T>(u0, u5);
  const t0 = X<T>(u1, u2), y1 = X<T>(t0, u7), y4 = X<T>(y1, u3), y12 = X<T>(y13, y14);
  const y2 = X<T>(y1, u0), y5 = X<T>(y1, u6), y3 = X<T>(y5, y8), t1 = X<T>(u4, y12);
  const y15 = X<T>(t1, u5), y20 = X<T>(t1, u1), y6 = X<T>(y15, u7), y10 = X<T>(y15, t0);
  const y11 = X<T>(y20, y9), y7 = X<T>(u7, y11), y17 = X<T>(y10, y11), y19 = X<T>(y10, y8);
  const y16 = X<T>(t0, y11), y21 = X<T>(y13, y16), y18 = X<T>(u0, y16);

  // Inversion in GF(2^4)^2, shared middle layer.
  const t2 = A<T>(y12, y15), t3 = A<T>(y3, y6), t4 = X<T>(t3, t2), t5 = A<T>(y4, u7);
  const t6 = X<T>(t5, t2), t7 = A<T>(y13, y16), t8 = A<T>(y5, y1), t9 = X<T>(t8, t7);
  const t10 = A<T>(y2, y7), t11 = X<T>(t10, t7), t12 = A<T>(y9, y11), t13 = A<T>(y14, y17);
  const t14 = X<T>(t13, t12), t15 = A<T>(y8, y10), t16 = X<T>(t15, t12), t17 = X<T>(t4, t14);
  const t18 = X<T>(t6, t16), t19 = X<T>(t9, t14), t20 = X<T>(t11, t16), t21 = X<T>(t17, y20);
  const t22 = X<T>(t18, y19), t23 = X<T>(t19, y21), t24 = X<T>(t20, y18);
  const t25 = X<T>(t21, t22), t26 = A<T>(t21, t23), t27 = X<T>(t24, t26), t28 = A<T>(t25, t27);
  const t29 = X<T>(t28, t22), t30 = X<T>(t23, t24), t31 = X<T>(t22, t26), t32 = A<T>(t31, t30);
  const t33 = X<T>(t32, t24), t34 = X<T>(t23, t33), t35 = X<T>(t27, t33), t36 = A<T>(t24, t35);
  const t37 = X<T>(t36, t34), t38 = X<T>(t27, t36), t39 = A<T>(t29, t38), t40 = X<T>(t25, t39);
  const t41 = X<T>(t40, t37), t42 = X<T>(t29, t33), t43 = X<T>(t29, t40), t44 = X<T>(t33, t37);
  const t45 = X<T>(t42, t41);
  const z0 = A<T>(t44, y15), z1 = A<T>(t37, y6), z2 = A<T>(t33, u7), z3 = A<T>(t43, y16);
  const z4 = A<T>(t40, y1), z5 = A<T>(t29, y7), z6 = A<T>(t42, y11), z7 = A<T>(t45, y17);
  const z8 = A<T>(t41, y10), z9 = A<T>(t44, y12), z10 = A<T>(t37, y3), z11 = A<T>(t33, y4);
  const z12 = A<T>(t43, y13), z13 = A<T>(t40, y5), z14 = A<T>(t29, y2), z15 = A<T>(t42, y9);
  const z16 = A<T>(t45, y14), z17 = A<T>(t41, y8);

  // Bottom linear layer (with the affine constant 0x63 folded in as NOTs).
  const t46 = X<T>(z15, z16), t47 = X<T>(z10, z11), t48 = X<T>(z5, z13), t49 = X<T>(z9, z10);
  const t50 = X<T>(z2, z12), t51 = X<T>(z2, z5), t52 = X<T>(z7, z8), t53 = X<T>(z0, z3);
  const t54 = X<T>(z6, z7), t55 = X<T>(z16, z17), t56 = X<T>(z12, t48), t57 = X<T>(t50, t53);
  const t58 = X<T>(z4, t46), t59 = X<T>(z3, t54), t60 = X<T>(t46, t57), t61 = X<T>(z14, t57);
  const t62 = X<T>(t52, t58), t63 = X<T>(t49, t58), t64 = X<T>(z4, t59), t65 = X<T>(t61, t62);
  const t66 = X<T>(z1, t63);
  const s0 = X<T>(t59, t63), s6 = X<T>(t56, N<T>(t62)), s7 = X<T>(t48, N<T>(t60));
  const t67 = X<T>(t64, t65);
  const s3 = X<T>(t53, t66), s4 = X<T>(t51, t66), s5 = X<T>(t47, t65);
  const s1 = X<T>(t64, N<T>(s3)), s2 = X<T>(t55, N<T>(t67));

  st<T>(q, 7, s0); st<T>(q, 6, s1); st<T>(q, 5, s2); st<T>(q, 4, s3);
  st<T>(q, 3, s4); st<T>(q, 2, s5); st<T>(q, 1, s6); st<T>(q, 0, s7);
}
