/**
 * Vector exp for f32x4 (Cephes expf: exp(x) = 2^n · e^r with |r| ≤ ln2/2 and a degree-6 polynomial for
 * e^r), within 2 ulp of the correctly rounded result on [-87, 88]. wasm SIMD has no transcendental
 * instructions, and calling the scalar Mathf.exp per lane would cost more than the rest of the kernel.
 */

// @ts-ignore: decorator
@inline export function expV(x: v128): v128 {
  // pmin/pmax are one instruction each on x86; min/max, with their NaN and -0 rules, are several.
  x = f32x4.pmin(f32x4.pmax(x, f32x4.splat(-87.33654)), f32x4.splat(88.37626));
  // n = round(x·log2 e) by the 1.5·2^23 trick: adding it leaves n in the low mantissa bits of t, which
  // give 2^n below without a float-to-int conversion (several instructions on x86).
  const t = f32x4.add(f32x4.mul(x, f32x4.splat(1.44269504088896341)), f32x4.splat(12582912.0));
  const n = f32x4.sub(t, f32x4.splat(12582912.0));
  // r = x - n·ln2, with ln2 split in two so n·ln2_hi is exact.
  let r = f32x4.sub(x, f32x4.mul(n, f32x4.splat(0.693359375)));
  r = f32x4.sub(r, f32x4.mul(n, f32x4.splat(-2.12194440e-4)));
  let p = f32x4.splat(1.9875691500e-4);
  p = madd(p, r, f32x4.splat(1.3981999507e-3));
  p = madd(p, r, f32x4.splat(8.3334519073e-3));
  p = madd(p, r, f32x4.splat(4.1665795894e-2));
  p = madd(p, r, f32x4.splat(1.6666665459e-1));
  p = madd(p, r, f32x4.splat(5.0000001201e-1));
  p = f32x4.add(madd(f32x4.mul(p, r), r, r), f32x4.splat(1));
  // 2^n built from its exponent bits: t's bits are 0x4B400000 + n, and the shift drops the 0x4B400000.
  const pow2 = i32x4.shl(i32x4.add(t, i32x4.splat(127)), 23);
  return f32x4.mul(p, pow2);
}

/** The sum of a vector's four lanes, as (l0 + l1) + (l2 + l3). */
// @ts-ignore: decorator
@inline export function hsum(v: v128): f32 {
  return f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) + (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3));
}

/** 1 / (1 + e^-x). */
// @ts-ignore: decorator
@inline export function sigmoidV(x: v128): v128 {
  const one = f32x4.splat(1);
  return f32x4.div(one, f32x4.add(one, expV(f32x4.neg(x))));
}

/** tanh x = sign(x) · (1 - 2 / (e^{2|x|} + 1)); absolute error below 1e-7 (relative error grows only for |x| < 1e-3). */
// @ts-ignore: decorator
@inline export function tanhV(x: v128): v128 {
  const ax = f32x4.abs(x);
  const e = expV(f32x4.add(ax, ax));
  const t = f32x4.sub(f32x4.splat(1), f32x4.div(f32x4.splat(2), f32x4.add(e, f32x4.splat(1))));
  // Copy the sign bit of x onto t (t ≥ 0).
  return v128.or(t, v128.and(x, i32x4.splat(0x80000000)));
}

/**
 * Scalar f64 exp and log, within a few ulp, without lookup tables: AssemblyScript's Math.exp/log carry
 * data segments, and a module with data segments would rewrite them into the shared memory each time a
 * worker instantiates it.
 */
export function exp64(x: f64): f64 {
  if (x < -708) return 0;
  if (x > 709) return Infinity;
  const n = Math.round(x * 1.4426950408889634);
  const r = x - n * 6.93147180369123816490e-1 - n * 1.90821492927058770002e-10;
  // Taylor series of e^r to degree 13; |r| ≤ 0.35 makes the remainder < 1e-17. Evaluated by Estrin's
  // scheme (pairs of terms, then powers r², r⁴, r⁸): five multiply-add steps deep instead of thirteen,
  // so consecutive calls overlap in the processor (a softmax row's exps are independent).
  const r2 = r * r;
  const r4 = r2 * r2;
  const q0 = 1.0 + r;
  const q1 = 0.5 + r * (1.0 / 6.0);
  const q2 = 1.0 / 24.0 + r * (1.0 / 120.0);
  const q3 = 1.0 / 720.0 + r * (1.0 / 5040.0);
  const q4 = 1.0 / 40320.0 + r * (1.0 / 362880.0);
  const q5 = 1.0 / 3628800.0 + r * (1.0 / 39916800.0);
  const q6 = 1.0 / 479001600.0 + r * (1.0 / 6227020800.0);
  const s0 = q0 + q1 * r2;
  const s1 = q2 + q3 * r2;
  const s2 = q4 + q5 * r2;
  const p = s0 + s1 * r4 + (s2 + q6 * r4) * (r4 * r4);
  // Scale by 2^n in two steps so n down to -1074 stays representable.
  const n1 = <i64>n >> 1;
  const n2 = <i64>n - n1;
  return p * reinterpret<f64>((n1 + 1023) << 52) * reinterpret<f64>((n2 + 1023) << 52);
}

/** Natural log for finite x > 0: x = 2^k·m with m in [√½, √2), log m = 2·atanh((m-1)/(m+1)) as a series. */
export function log64(x: f64): f64 {
  const bits = reinterpret<i64>(x);
  let k = <i32>((bits >> 52) & 0x7ff) - 1023;
  let m = reinterpret<f64>((bits & 0x000fffffffffffff) | 0x3ff0000000000000);
  if (m > 1.4142135623730951) {
    m *= 0.5;
    k++;
  }
  const s = (m - 1) / (m + 1);
  const s2 = s * s;
  let p = 1.0 / 23.0;
  p = p * s2 + 1.0 / 21.0;
  p = p * s2 + 1.0 / 19.0;
  p = p * s2 + 1.0 / 17.0;
  p = p * s2 + 1.0 / 15.0;
  p = p * s2 + 1.0 / 13.0;
  p = p * s2 + 1.0 / 11.0;
  p = p * s2 + 1.0 / 9.0;
  p = p * s2 + 1.0 / 7.0;
  p = p * s2 + 1.0 / 5.0;
  p = p * s2 + 1.0 / 3.0;
  p = p * s2 + 1.0;
  return <f64>k * 0.6931471805599453 + 2 * s * p;
}

/**
 * a·b + c per lane. The relaxed-SIMD build (ASC_FEATURE_RELAXED_SIMD, a compile-time constant) emits
 * f32x4.relaxed_madd, a fused multiply-add on processors that have one (one instruction, one rounding);
 * the plain build a multiply and an add. Results may differ in the last bit between the two builds.
 */
// @ts-ignore: decorator
@inline export function madd(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  return f32x4.add(f32x4.mul(a, b), c);
}
