//! Instruction-set selection: which pulp `Simd` a kernel body is instantiated with.

use crate::error::{ConvError, Result};
use pulp::{Simd, WithSimd};

/// One instruction set a kernel body can run as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Isa {
    /// x86-64-v4 with AMX-BF16 tiles (Intel Sapphire Rapids and later, on an OS that grants
    /// the tile state): pointwise layers multiply on tiles, as sums of bf16 products accurate
    /// to f32 (`amx.rs`; a pixel whose input holds an infinity, NaN or a magnitude past
    /// `2^+-40` by plain f32 FMAs); every other layer runs its AVX-512 body.
    Amx,
    /// x86-64-v4: AVX-512F/BW/DQ/VL, 16 f32 lanes, 32 vector registers.
    Avx512,
    /// x86-64-v3: AVX2 + FMA, 8 f32 lanes, 16 vector registers.
    Avx2,
    /// AArch64 NEON, 4 f32 lanes, 32 vector registers.
    Neon,
    /// Portable scalar code, one lane.
    Scalar,
}

impl Isa {
    /// Every instruction set this crate knows, best first.
    pub const ALL: [Isa; 5] = [Isa::Amx, Isa::Avx512, Isa::Avx2, Isa::Neon, Isa::Scalar];

    /// A short stable name, used in kernel names, bench ids and test messages.
    pub const fn name(self) -> &'static str {
        match self {
            Isa::Amx => "amx",
            Isa::Avx512 => "avx512",
            Isa::Avx2 => "avx2",
            Isa::Neon => "neon",
            Isa::Scalar => "scalar",
        }
    }

    /// f32 lanes of one vector.
    pub const fn lanes(self) -> usize {
        match self {
            Isa::Amx | Isa::Avx512 => 16,
            Isa::Avx2 => 8,
            Isa::Neon => 4,
            Isa::Scalar => 1,
        }
    }

    /// Whether it runs the bodies planned for 32 vector registers (AVX-512, NEON; see
    /// [`Isa::run_by_class`]).
    pub const fn wide(self) -> bool {
        matches!(self, Isa::Amx | Isa::Avx512 | Isa::Neon)
    }

    /// Whether this machine can run it.
    pub fn is_available(self) -> bool {
        match self {
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            Isa::Amx => pulp::x86::V4::is_available() && crate::amx::available(),
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            Isa::Avx512 => pulp::x86::V4::is_available(),
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            Isa::Avx2 => pulp::x86::V3::is_available(),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => pulp::aarch64::Neon::is_available(),
            Isa::Scalar => true,
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// The instruction sets this machine can run, best first. Tests and benches iterate over it.
    pub fn available() -> Vec<Isa> {
        Isa::ALL.into_iter().filter(|i| i.is_available()).collect()
    }

    /// The best instruction set of this machine (what `forward` uses).
    pub fn best() -> Isa {
        Isa::ALL
            .into_iter()
            .find(|i| i.is_available())
            .unwrap_or(Isa::Scalar)
    }

    /// Runs `op` instantiated for this instruction set.
    pub fn run<Op: WithSimd>(self, op: Op) -> Result<Op::Output> {
        self.run_by_class(AnyClass(op))
    }

    /// Runs `op` instantiated for this instruction set, with the body of its register class
    /// (`WIDE`: 32 vector registers, AVX-512 and NEON; otherwise 16, AVX2 and scalar). Each ISA
    /// instantiates only its own class's body.
    pub fn run_by_class<Op: ClassOp>(self, op: Op) -> Result<Op::Output> {
        match self {
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            Isa::Amx | Isa::Avx512 => match pulp::x86::V4::try_new() {
                Some(simd) => Ok(pulp::Simd::vectorize(simd, Class::<Op, true>(op))),
                None => Err(ConvError::IsaUnavailable(self.name())),
            },
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            Isa::Avx2 => match pulp::x86::V3::try_new() {
                Some(simd) => Ok(pulp::Simd::vectorize(simd, Class::<Op, false>(op))),
                None => Err(ConvError::IsaUnavailable(self.name())),
            },
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => match pulp::aarch64::Neon::try_new() {
                Some(simd) => Ok(pulp::Simd::vectorize(simd, Class::<Op, true>(op))),
                None => Err(ConvError::IsaUnavailable(self.name())),
            },
            Isa::Scalar => Ok(pulp::Simd::vectorize(pulp::Scalar, Class::<Op, false>(op))),
            #[allow(unreachable_patterns)]
            _ => Err(ConvError::IsaUnavailable(self.name())),
        }
    }
}

/// An operation with one body per register class, for [`Isa::run_by_class`].
pub trait ClassOp {
    type Output;
    /// The body for `S`; `WIDE` when `S` has 32 vector registers.
    fn with_simd<S: Simd, const WIDE: bool>(self, simd: S) -> Self::Output;
}

/// A [`ClassOp`] as the `WithSimd` pulp dispatches, with its class fixed.
struct Class<Op, const WIDE: bool>(Op);

impl<Op: ClassOp, const WIDE: bool> WithSimd for Class<Op, WIDE> {
    type Output = Op::Output;

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> Op::Output {
        self.0.with_simd::<S, WIDE>(simd)
    }
}

/// A plain `WithSimd`, the same body for both classes.
struct AnyClass<Op>(Op);

impl<Op: WithSimd> ClassOp for AnyClass<Op> {
    type Output = Op::Output;

    #[inline(always)]
    fn with_simd<S: Simd, const WIDE: bool>(self, simd: S) -> Op::Output {
        self.0.with_simd(simd)
    }
}

impl core::fmt::Display for Isa {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether `S` is the ISA `T`.
#[inline(always)]
pub(crate) fn is_isa<S: 'static, T: 'static>() -> bool {
    core::any::TypeId::of::<S>() == core::any::TypeId::of::<T>()
}

/// Whether `S` is AVX-512 (`pulp::x86::V4`); false off x86-64, where that type does not exist.
#[inline(always)]
pub(crate) fn is_v4<S: 'static>() -> bool {
    #[cfg(target_arch = "x86_64")]
    return is_isa::<S, pulp::x86::V4>();
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// `simd` as the ISA token `T` when `S` is `T` (no feature detection: the token exists).
#[inline(always)]
pub(crate) fn as_isa<S: Copy + 'static, T: Copy + 'static>(simd: S) -> Option<T> {
    // SAFETY: `S` and `T` are the same type (same `TypeId`), so this copies a `T`.
    is_isa::<S, T>().then(|| unsafe { core::mem::transmute_copy::<S, T>(&simd) })
}

/// The mask of lanes `lo..hi`, both clamped to the lane count (as pulp's `mask_between_m32s`).
/// On AVX-512 two shifts and a subtraction: pulp's also looks up its load and store routines in
/// bounds-checked tables, about 25 instructions per mask, which an in-place tile paid four times.
#[inline(always)]
pub(crate) fn lanes_between<S: pulp::Simd>(simd: S, lo: u32, hi: u32) -> pulp::MemMask<S::m32s> {
    let hi = hi.min(S::F32_LANES as u32);
    let lo = lo.min(hi);
    #[cfg(target_arch = "x86_64")]
    if is_isa::<S, pulp::x86::V4>() {
        let bits = ((1u32 << hi) - (1u32 << lo)) as u16;
        return pulp::MemMask::new(bytemuck::checked::cast(pulp::b16(bits)));
    }
    // An empty span as `0..0`: pulp's mask tables take a start below the lane count.
    let (lo, hi) = if lo == hi { (0, 0) } else { (lo, hi) };
    pulp::MemMask::new(simd.mask_between_m32s(lo, hi).mask())
}

/// Runs `op` on every instruction set this machine has (the tests of runtime helpers).
#[cfg(test)]
pub(crate) fn on_every_isa<K: pulp::WithSimd<Output = ()> + Copy>(op: K) {
    #[cfg(target_arch = "x86_64")]
    {
        if let Some(v4) = pulp::x86::V4::try_new() {
            pulp::Simd::vectorize(v4, op);
        }
        if let Some(v3) = pulp::x86::V3::try_new() {
            pulp::Simd::vectorize(v3, op);
        }
    }
    pulp::Simd::vectorize(pulp::Scalar, op);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_between_enables_exactly_the_clamped_range() {
        #[derive(Clone, Copy)]
        struct K;
        impl pulp::WithSimd for K {
            type Output = ();
            #[inline(always)]
            fn with_simd<S: pulp::Simd>(self, simd: S) {
                let lanes = S::F32_LANES as u32;
                let ones = simd.splat_f32s(1.0);
                for lo in 0..=lanes + 2 {
                    for hi in 0..=lanes + 2 {
                        let mut out = vec![0.0f32; lanes as usize];
                        let mask = lanes_between(simd, lo, hi);
                        // SAFETY: `out` holds a whole vector, so every lane may be written.
                        unsafe { simd.mask_store_ptr_f32s(mask, out.as_mut_ptr(), ones) };
                        let (h, l) = (hi.min(lanes), lo.min(hi.min(lanes)));
                        let want: Vec<f32> = (0..lanes)
                            .map(|i| if (l..h).contains(&i) { 1.0 } else { 0.0 })
                            .collect();
                        assert_eq!(out, want, "lanes {lo}..{hi} of {lanes}");
                    }
                }
            }
        }
        on_every_isa(K);
    }
}
