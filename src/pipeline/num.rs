//! Numbers in data: a totally ordered finite `f64`, and an exact sum.
//!
//! Differential dataflow needs `Ord + Hash` on everything it stores, which `f64` is
//! not. [`Num`] wraps a *finite* `f64` with `total_cmp` order (so `-0.0 < 0.0`, and
//! equality is bit equality). It is a newtype of our own rather than `ordered-float`
//! because tidemark validates finiteness at ingest and wants that invariant in the type.
//!
//! [`ExactSum`] adds and subtracts `f64` values without rounding: retracting a value
//! restores the previous sum bit for bit, whatever the order of operations, and the
//! reported value is the correctly rounded exact sum.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A finite `f64` with a total order, usable as differential data.
#[derive(Clone, Copy, Default)]
pub struct Num(f64);

impl Num {
    /// Wraps a finite value; `None` for NaN and infinities.
    pub fn new(value: f64) -> Option<Num> {
        value.is_finite().then_some(Num(value))
    }

    /// Wraps a computed result, which may have overflowed to an infinity (never NaN).
    pub(crate) fn result(value: f64) -> Num {
        debug_assert!(!value.is_nan());
        Num(value)
    }

    /// The wrapped value.
    pub fn get(self) -> f64 {
        self.0
    }
}

impl PartialEq for Num {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Num {}
impl PartialOrd for Num {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Num {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}
impl Hash for Num {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.to_bits().hash(state)
    }
}
impl fmt::Debug for Num {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}
impl fmt::Display for Num {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}
impl From<Num> for f64 {
    fn from(n: Num) -> f64 {
        n.0
    }
}
impl Serialize for Num {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.0)
    }
}
impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = f64::deserialize(d)?;
        Num::new(v).ok_or_else(|| serde::de::Error::custom("number is not finite"))
    }
}

/// An exact running sum of `f64` values that supports retraction.
///
/// Internally a fixed-point integer: `mantissa × 2^lsb` in an `i128` while the values'
/// exponents stay within about 70 binary orders of magnitude of each other (all data
/// seen in practice), and a 2,200-bit accumulator covering the whole `f64` range
/// otherwise. Both are exact; only [`ExactSum::value`] rounds, once, to nearest.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ExactSum {
    repr: Repr,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
enum Repr {
    Small { lsb: i32, mantissa: i128 },
    Wide(Box<Wide>),
}

impl Default for Repr {
    fn default() -> Self {
        Repr::Small { lsb: i32::MAX, mantissa: 0 }
    }
}

impl ExactSum {
    /// Adds `value` (finite) `times` times; negative `times` subtracts.
    pub fn add(&mut self, value: f64, times: i64) {
        let Some((m, e)) = decompose(value) else { return };
        if times == 0 {
            return;
        }
        match (m as i128).checked_mul(times as i128) {
            Some(term) => self.add_term(term, e),
            None => self.widen().add(m, e, times),
        }
    }

    /// Adds everything `other` holds.
    pub fn merge(&mut self, other: &ExactSum) {
        match &other.repr {
            Repr::Small { mantissa: 0, .. } => {}
            Repr::Small { lsb, mantissa } => self.add_term(*mantissa, *lsb),
            Repr::Wide(w) => self.widen().merge(w),
        }
    }

    /// Adds `term × 2^e`.
    fn add_term(&mut self, term: i128, e: i32) {
        if let Repr::Small { lsb, mantissa } = &mut self.repr
            && let Some(next) = small_add(*lsb, *mantissa, term, e)
        {
            (*lsb, *mantissa) = next;
            return;
        }
        self.widen().add_i128(term, e);
    }

    /// Whether the exact sum is zero.
    pub fn is_zero(&self) -> bool {
        match &self.repr {
            Repr::Small { mantissa, .. } => *mantissa == 0,
            Repr::Wide(w) => w.is_zero(),
        }
    }

    /// The exact sum rounded to the nearest `f64` (±infinity on overflow).
    pub fn value(&self) -> f64 {
        match &self.repr {
            Repr::Small { mantissa: 0, .. } => 0.0,
            Repr::Small { lsb, mantissa } => scale(*mantissa as f64, *lsb),
            Repr::Wide(w) => w.value(),
        }
    }

    fn widen(&mut self) -> &mut Wide {
        if let Repr::Small { lsb, mantissa } = self.repr {
            let mut wide = Box::new(Wide::default());
            if mantissa != 0 {
                wide.add_i128(mantissa, lsb);
            }
            self.repr = Repr::Wide(wide);
        }
        match &mut self.repr {
            Repr::Wide(w) => w,
            Repr::Small { .. } => unreachable!("just widened"),
        }
    }
}

/// Splits a finite non-zero `f64` into an odd integer mantissa and a binary exponent.
fn decompose(value: f64) -> Option<(i64, i32)> {
    if value == 0.0 || !value.is_finite() {
        return None;
    }
    let bits = value.to_bits();
    let exp_bits = ((bits >> 52) & 0x7ff) as i32;
    let frac = (bits & ((1u64 << 52) - 1)) as i64;
    let (mut m, mut e) = if exp_bits == 0 { (frac, -1074) } else { (frac | (1i64 << 52), exp_bits - 1075) };
    let tz = m.trailing_zeros() as i32;
    m >>= tz;
    e += tz;
    Some((if value < 0.0 { -m } else { m }, e))
}

/// `acc × 2^lsb + term × 2^e` in the small representation, if it fits.
fn small_add(lsb: i32, acc: i128, term: i128, e: i32) -> Option<(i32, i128)> {
    let new_lsb = if acc == 0 { e } else { lsb.min(e) };
    let acc = if acc == 0 { 0 } else { shl_checked(acc, lsb - new_lsb)? };
    let term = shl_checked(term, e - new_lsb)?;
    let sum = acc.checked_add(term)?;
    if sum == 0 {
        return Some((i32::MAX, 0));
    }
    // Keep the representation normalised so that integer-valued data stays at lsb >= 0.
    let tz = sum.trailing_zeros() as i32;
    Some((new_lsb + tz, sum >> tz))
}

fn shl_checked(v: i128, by: i32) -> Option<i128> {
    if by == 0 {
        return Some(v);
    }
    if !(0..127).contains(&by) {
        return None;
    }
    let headroom = if v >= 0 { v.leading_zeros() } else { (!v).leading_zeros() } as i32;
    (headroom > by).then(|| v << by)
}

/// `x × 2^k`, exact unless the result is subnormal or overflows.
fn scale(mut x: f64, mut k: i32) -> f64 {
    // Multiply by exact powers of two in steps that stay in the normal range.
    while k > 1000 {
        x *= f64::from_bits(((1000 + 1023) as u64) << 52);
        k -= 1000;
    }
    while k < -1000 {
        x *= f64::from_bits(((-1000 + 1023) as u64) << 52);
        k += 1000;
    }
    x * f64::from_bits(((k + 1023) as u64) << 52)
}

/// Digits of 32 bits in `i64` limbs, least significant first; limb `i` weighs
/// `2^(32 i + WIDE_LSB)`. Limbs carry lazily: each addition adds less than 2^32 to a
/// limb, so 2^28 of them fit before normalisation.
const LIMBS: usize = 72;
const WIDE_LSB: i32 = -1074 - 32; // room below the smallest subnormal for shifted mantissas

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(into = "WideLimbs", try_from = "WideLimbs")]
struct Wide {
    limbs: [i64; LIMBS],
    pending: u32,
}

/// [`Wide`] as checkpoints hold it (serde has no arrays of 72).
#[derive(Serialize, Deserialize)]
struct WideLimbs {
    limbs: Vec<i64>,
    pending: u32,
}

impl From<Wide> for WideLimbs {
    fn from(wide: Wide) -> WideLimbs {
        WideLimbs { limbs: wide.limbs.to_vec(), pending: wide.pending }
    }
}

/// A saved [`Wide`] with another number of limbs.
#[derive(Debug, thiserror::Error)]
#[error("a wide sum has {LIMBS} limbs, not {0}")]
struct LimbCount(usize);

impl TryFrom<WideLimbs> for Wide {
    type Error = LimbCount;

    fn try_from(saved: WideLimbs) -> Result<Wide, LimbCount> {
        let found = saved.limbs.len();
        let limbs = saved.limbs.try_into().map_err(|_| LimbCount(found))?;
        Ok(Wide { limbs, pending: saved.pending })
    }
}

impl Default for Wide {
    fn default() -> Self {
        Wide { limbs: [0; LIMBS], pending: 0 }
    }
}

impl Wide {
    fn add(&mut self, m: i64, e: i32, times: i64) {
        // times × m can need 117 bits: split times into 32-bit chunks.
        let mut t = times as i128;
        let mut shift = 0;
        while t != 0 {
            let chunk = (t as i64) & 0xffff_ffff;
            let chunk = if chunk >= 1 << 31 { chunk - (1 << 32) } else { chunk };
            self.add_i128((m as i128) * (chunk as i128), e + shift);
            t = (t - chunk as i128) >> 32;
            shift += 32;
        }
    }

    /// Adds `v × 2^e`.
    fn add_i128(&mut self, v: i128, e: i32) {
        let offset = (e - WIDE_LSB) as usize;
        let (limb, bit) = (offset / 32, offset % 32);
        let sign = if v < 0 { -1 } else { 1 };
        let mag = v.unsigned_abs();
        // Each 32-bit digit of |v|, shifted by `bit`, lands on two adjacent limbs.
        for i in 0..4 {
            let shifted = (((mag >> (32 * i)) & 0xffff_ffff) as i64) << bit;
            for (j, part) in [(0, shifted & 0xffff_ffff), (1, shifted >> 32)] {
                if part != 0 && limb + i + j < LIMBS {
                    self.limbs[limb + i + j] += sign * part;
                }
            }
        }
        self.pending += 1;
        if self.pending >= 1 << 28 {
            self.normalise();
        }
    }

    fn merge(&mut self, other: &Wide) {
        let mut other = other.clone();
        other.normalise();
        self.normalise();
        for (mine, theirs) in self.limbs.iter_mut().zip(other.limbs) {
            *mine += theirs;
        }
        self.normalise();
    }

    fn normalise(&mut self) {
        let mut carry = 0i64;
        for limb in self.limbs.iter_mut() {
            let v = *limb + carry;
            carry = v >> 32;
            *limb = v & 0xffff_ffff;
        }
        // Two's complement: the remaining carry is the sign (0 or -1) spread above the top.
        self.limbs[LIMBS - 1] += carry << 32;
        self.pending = 0;
    }

    fn is_zero(&self) -> bool {
        let mut w = self.clone();
        w.normalise();
        w.limbs.iter().all(|&l| l == 0)
    }

    fn value(&self) -> f64 {
        let mut w = self.clone();
        w.normalise();
        let negative = w.limbs[LIMBS - 1] < 0;
        if negative {
            w.limbs.iter_mut().for_each(|l| *l = -*l);
            w.normalise();
        }
        let Some(top) = w.limbs.iter().rposition(|&l| l != 0) else { return 0.0 };
        // Take the top three digits (96 bits, > 53 + guard bits) and fold everything
        // below into a sticky bit, so the single conversion rounds correctly.
        let lo = top.saturating_sub(2);
        let mut mag: u128 = 0;
        for i in (lo..=top).rev() {
            mag = (mag << 32) | w.limbs[i] as u128;
        }
        if w.limbs[..lo].iter().any(|&l| l != 0) {
            mag |= 1;
        }
        let v = scale(mag as f64, lo as i32 * 32 + WIDE_LSB);
        if negative { -v } else { v }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum_of(values: &[f64]) -> f64 {
        let mut s = ExactSum::default();
        for &v in values {
            s.add(v, 1);
        }
        s.value()
    }

    #[test]
    fn small_sums_are_exact_and_correctly_rounded() {
        assert_eq!(sum_of(&[0.1, 0.2]), 0.30000000000000004);
        assert_eq!(sum_of(&[0.1, 0.2, 0.3]), 0.6);
        assert_eq!(sum_of(&[1e16, 1.0, -1e16]), 1.0);
        assert_eq!(sum_of(&[3.0, 4.5, -1.25]), 6.25);
        assert_eq!(sum_of(&[]), 0.0);
    }

    #[test]
    fn wide_range_values_fall_back_exactly() {
        assert_eq!(sum_of(&[1e300, 1e-300, -1e300]), 1e-300);
        assert_eq!(sum_of(&[1e308, 1e308]), f64::INFINITY);
        assert_eq!(sum_of(&[f64::MIN_POSITIVE / 4.0, 1.0, -1.0]), f64::MIN_POSITIVE / 4.0);
        assert_eq!(sum_of(&[-1e200, 5.0, -3.0]), -1e200);
        assert_eq!(sum_of(&[-1e200, 1e200, -7.5]), -7.5);
    }

    #[test]
    fn retraction_restores_previous_value_bit_for_bit() {
        let values = [0.1, 1e-9, 123456.789, -0.3, 1e250, 7.0, -1e-280, 0.7];
        let mut s = ExactSum::default();
        let mut history = vec![s.value()];
        for &v in &values {
            s.add(v, 1);
            history.push(s.value());
        }
        for (i, &v) in values.iter().enumerate().rev() {
            s.add(v, -1);
            assert_eq!(s.value().to_bits(), history[i].to_bits(), "after retracting {v}");
        }
        assert!(s.is_zero());
    }

    #[test]
    fn multiplicities_multiply() {
        let mut s = ExactSum::default();
        s.add(0.1, 3);
        assert_eq!(s.value(), sum_of(&[0.1, 0.1, 0.1]));
        s.add(1e300, i64::MAX);
        s.add(1e300, -i64::MAX);
        assert_eq!(s.value(), sum_of(&[0.1, 0.1, 0.1]));
    }

    #[test]
    fn merge_adds_exactly() {
        let (mut a, mut b) = (ExactSum::default(), ExactSum::default());
        a.add(0.1, 1);
        b.add(0.2, 1);
        b.add(1e300, 1);
        a.merge(&b);
        a.add(1e300, -1);
        assert_eq!(a.value(), sum_of(&[0.1, 0.2]));
        let mut c = ExactSum::default();
        c.merge(&a);
        assert_eq!(c.value(), a.value());
    }

    #[test]
    fn num_orders_totally() {
        let mut v = [Num(1.0), Num(-0.0), Num(0.0), Num(-3.5)];
        v.sort();
        assert_eq!(v.map(|n| n.get().to_bits()), [-3.5f64, -0.0, 0.0, 1.0].map(f64::to_bits));
        assert!(Num::new(f64::NAN).is_none());
        assert!(serde_json::from_str::<Num>("1e999").is_err());
    }
}
