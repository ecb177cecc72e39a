//! Eight-lane f32 vectors and CPU dispatch: the only module with `unsafe`.
//!
//! Kernels elsewhere are written once, generic over [`F32x8`], and marked
//! `#[inline(always)]`. [`dispatch`] runs a [`Kernel`] through a function
//! compiled with AVX2 + FMA when the CPU has them (checked at run time), so the
//! whole inlined kernel body gets those instructions; otherwise the portable
//! lane-array implementation runs. The AVX2 vector type is private to this
//! module, which makes that run-time check the only way to reach it.
#![allow(unsafe_code)]

/// An 8-lane single-precision vector.
pub trait F32x8: Copy {
    /// All lanes zero.
    fn zero() -> Self;
    /// All lanes `v`.
    fn splat(v: f32) -> Self;
    /// Loads `s[0..8]` (panics if `s` is shorter).
    fn load(s: &[f32]) -> Self;
    /// Stores into `s[0..8]` (panics if `s` is shorter).
    fn store(self, s: &mut [f32]);
    /// Loads `s[i..i + 8]` with a single bounds check (panics if out of range).
    fn load_at(s: &[f32], i: usize) -> Self;
    /// Stores into `s[i..i + 8]` with a single bounds check (panics if out of range).
    fn store_at(self, s: &mut [f32], i: usize);
    /// Lane-wise sum.
    fn add(self, o: Self) -> Self;
    /// Lane-wise difference.
    fn sub(self, o: Self) -> Self;
    /// Lane-wise product.
    fn mul(self, o: Self) -> Self;
    /// `self * b + c`, fused where the CPU can.
    fn mul_add(self, b: Self, c: Self) -> Self;
    /// Lane-wise maximum.
    fn max(self, o: Self) -> Self;
    /// Lane-wise minimum.
    fn min(self, o: Self) -> Self;

    /// Loads 8 IEEE half-precision values (as bits) `s[i..i + 8]`, widened to f32.
    #[inline(always)]
    fn load_h(s: &[u16], i: usize) -> Self {
        let mut v = [0.0f32; 8];
        for (d, h) in v.iter_mut().zip(&s[i..i + 8]) {
            *d = half::f16::from_bits(*h).to_f32();
        }
        Self::load(&v)
    }

    /// Stores as 8 half-precision values (rounded to nearest even) into `s[i..i + 8]`.
    #[inline(always)]
    fn store_h(self, s: &mut [u16], i: usize) {
        let mut v = [0.0f32; 8];
        self.store(&mut v);
        for (d, x) in s[i..i + 8].iter_mut().zip(v) {
            *d = half::f16::from_f32(x).to_bits();
        }
    }

    /// [`load_strided`](Self::load_strided) from half-precision storage.
    #[inline(always)]
    fn load_strided_h<const N: usize>(s: &[u16], base: usize, stride: usize) -> [Self; N] {
        std::array::from_fn(|i| Self::load_h(s, base + i * stride))
    }

    /// [`store_strided`](Self::store_strided) into half-precision storage.
    #[inline(always)]
    fn store_strided_h<const N: usize>(
        v: &[Self; N],
        n: usize,
        s: &mut [u16],
        base: usize,
        stride: usize,
    ) {
        for (i, x) in v.iter().enumerate().take(n) {
            x.store_h(s, base + i * stride);
        }
    }

    /// Loads `N` vectors at `s[base + i * stride..]`, checking the range once.
    #[inline(always)]
    fn load_strided<const N: usize>(s: &[f32], base: usize, stride: usize) -> [Self; N] {
        std::array::from_fn(|i| Self::load_at(s, base + i * stride))
    }

    /// Stores the first `n` of `v` at `s[base + i * stride..]`, checking the range once.
    #[inline(always)]
    fn store_strided<const N: usize>(
        v: &[Self; N],
        n: usize,
        s: &mut [f32],
        base: usize,
        stride: usize,
    ) {
        for (i, x) in v.iter().enumerate().take(n) {
            x.store_at(s, base + i * stride);
        }
    }

    /// The matrix micro-kernel: for `j` in 0..6 and `k` in 0..K (K = `a.len() / 16`),
    /// `m[m_off + j * m_stride ..][..16] = sum_k a[16 k ..][..16] * b[b_off + j * b_stride + k]`.
    #[inline(always)]
    fn panel_6x16(
        a: &[f32],
        b: &[f32],
        b_off: usize,
        b_stride: usize,
        m: &mut [f32],
        m_off: usize,
        m_stride: usize,
    ) {
        let k_len = a.len() / 16;
        let mut acc = [[Self::zero(); 2]; 6];
        for k in 0..k_len {
            let a0 = Self::load_at(a, 16 * k);
            let a1 = Self::load_at(a, 16 * k + 8);
            for (j, accj) in acc.iter_mut().enumerate() {
                let bj = Self::splat(b[b_off + j * b_stride + k]);
                accj[0] = a0.mul_add(bj, accj[0]);
                accj[1] = a1.mul_add(bj, accj[1]);
            }
        }
        for (j, accj) in acc.iter().enumerate() {
            accj[0].store_at(m, m_off + j * m_stride);
            accj[1].store_at(m, m_off + j * m_stride + 8);
        }
    }
}

/// A computation that can run with any vector implementation.
pub trait Kernel {
    /// What the computation returns.
    type Output;
    /// Runs the computation with vector type `V`.
    fn run<V: F32x8>(self) -> Self::Output;
}

/// Runs `k` with the fastest vector implementation this CPU supports.
#[inline]
pub fn dispatch<K: Kernel>(k: K) -> K::Output {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: `run_avx2` only requires the avx2, fma and f16c CPU
        // features, which `has_avx2_fma` has just confirmed at run time.
        return unsafe { run_avx2(k) };
    }
    k.run::<Portable>()
}

/// Runs `k` with the portable implementation (tests compare both paths).
pub fn dispatch_portable<K: Kernel>(k: K) -> K::Output {
    k.run::<Portable>()
}

/// Whether the AVX2 + FMA path is used on this CPU.
pub fn simd_level() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        return "avx2+fma+f16c";
    }
    "portable"
}

#[cfg(target_arch = "x86_64")]
fn has_avx2_fma() -> bool {
    std::is_x86_feature_detected!("avx2")
        && std::is_x86_feature_detected!("fma")
        && std::is_x86_feature_detected!("f16c")
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
fn run_avx2<K: Kernel>(k: K) -> K::Output {
    k.run::<avx2::Avx2>()
}

/// Plain lane arrays; LLVM vectorises these for whatever the target offers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Portable([f32; 8]);

impl Portable {
    #[inline(always)]
    fn map2(self, o: Self, f: impl Fn(f32, f32) -> f32) -> Self {
        let mut r = [0.0; 8];
        for i in 0..8 {
            r[i] = f(self.0[i], o.0[i]);
        }
        Self(r)
    }
}

impl F32x8 for Portable {
    #[inline(always)]
    fn zero() -> Self {
        Self([0.0; 8])
    }
    #[inline(always)]
    fn splat(v: f32) -> Self {
        Self([v; 8])
    }
    #[inline(always)]
    fn load(s: &[f32]) -> Self {
        let mut r = [0.0; 8];
        r.copy_from_slice(&s[..8]);
        Self(r)
    }
    #[inline(always)]
    fn store(self, s: &mut [f32]) {
        s[..8].copy_from_slice(&self.0);
    }
    #[inline(always)]
    fn load_at(s: &[f32], i: usize) -> Self {
        Self::load(&s[i..i + 8])
    }
    #[inline(always)]
    fn store_at(self, s: &mut [f32], i: usize) {
        self.store(&mut s[i..i + 8]);
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        self.map2(o, |a, b| a + b)
    }
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        self.map2(o, |a, b| a - b)
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        self.map2(o, |a, b| a * b)
    }
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        let mut r = [0.0; 8];
        for i in 0..8 {
            r[i] = self.0[i] * b.0[i] + c.0[i];
        }
        Self(r)
    }
    #[inline(always)]
    fn max(self, o: Self) -> Self {
        self.map2(o, f32::max)
    }
    #[inline(always)]
    fn min(self, o: Self) -> Self {
        self.map2(o, f32::min)
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::F32x8;

    /// A `__m256`. Private: values exist only inside `run_avx2`, which the
    /// dispatcher enters after checking the CPU, so every intrinsic below runs
    /// on a CPU that has AVX2 and FMA.
    #[derive(Clone, Copy)]
    pub(super) struct Avx2(__m256);

    impl F32x8 for Avx2 {
        #[inline(always)]
        fn zero() -> Self {
            // SAFETY: only reachable on an AVX2+FMA CPU (see the type's doc).
            Self(unsafe { _mm256_setzero_ps() })
        }
        #[inline(always)]
        fn splat(v: f32) -> Self {
            // SAFETY: only reachable on an AVX2+FMA CPU (see the type's doc).
            Self(unsafe { _mm256_set1_ps(v) })
        }
        #[inline(always)]
        fn load(s: &[f32]) -> Self {
            let s = &s[..8];
            // SAFETY: `s` has exactly 8 readable f32s (the slice index above
            // checks it); loadu has no alignment requirement; AVX2 CPU as above.
            Self(unsafe { _mm256_loadu_ps(s.as_ptr()) })
        }
        #[inline(always)]
        fn store(self, s: &mut [f32]) {
            let s = &mut s[..8];
            // SAFETY: `s` has exactly 8 writable f32s (checked by the index);
            // storeu has no alignment requirement; AVX2 CPU as above.
            unsafe { _mm256_storeu_ps(s.as_mut_ptr(), self.0) }
        }
        #[inline(always)]
        fn load_at(s: &[f32], i: usize) -> Self {
            assert!(i < s.len() && s.len() - i >= 8, "load_at out of bounds");
            // SAFETY: the assert guarantees s[i..i + 8] is in bounds; loadu
            // needs no alignment; AVX2 CPU as above.
            Self(unsafe { _mm256_loadu_ps(s.as_ptr().add(i)) })
        }
        #[inline(always)]
        fn store_at(self, s: &mut [f32], i: usize) {
            assert!(i < s.len() && s.len() - i >= 8, "store_at out of bounds");
            // SAFETY: the assert guarantees s[i..i + 8] is in bounds and `s` is
            // borrowed mutably; storeu needs no alignment; AVX2 CPU as above.
            unsafe { _mm256_storeu_ps(s.as_mut_ptr().add(i), self.0) }
        }
        #[inline(always)]
        fn load_strided<const N: usize>(s: &[f32], base: usize, stride: usize) -> [Self; N] {
            assert!(
                N > 0
                    && base
                        .checked_add((N - 1) * stride + 8)
                        .is_some_and(|end| end <= s.len()),
                "load_strided out of bounds"
            );
            let p = s.as_ptr();
            // SAFETY: the assert shows the last vector, and so every vector
            // base + i * stride (i < N), lies inside `s`; AVX2 CPU as above.
            std::array::from_fn(|i| Self(unsafe { _mm256_loadu_ps(p.add(base + i * stride)) }))
        }
        #[inline(always)]
        fn store_strided<const N: usize>(
            v: &[Self; N],
            n: usize,
            s: &mut [f32],
            base: usize,
            stride: usize,
        ) {
            let n = n.min(N);
            if n == 0 {
                return;
            }
            assert!(
                base.checked_add((n - 1) * stride + 8)
                    .is_some_and(|end| end <= s.len()),
                "store_strided out of bounds"
            );
            let p = s.as_mut_ptr();
            for (i, x) in v.iter().enumerate().take(n) {
                // SAFETY: the assert shows vectors 0..n at base + i * stride lie
                // inside `s`, which is borrowed mutably; AVX2 CPU as above.
                unsafe { _mm256_storeu_ps(p.add(base + i * stride), x.0) }
            }
        }
        #[inline(always)]
        fn load_h(s: &[u16], i: usize) -> Self {
            assert!(i < s.len() && s.len() - i >= 8, "load_h out of bounds");
            // SAFETY: the assert keeps the 16-byte read inside `s`; loadu needs
            // no alignment; AVX2+F16C CPU as above.
            Self(unsafe { _mm256_cvtph_ps(_mm_loadu_si128(s.as_ptr().add(i).cast())) })
        }
        #[inline(always)]
        fn store_h(self, s: &mut [u16], i: usize) {
            assert!(i < s.len() && s.len() - i >= 8, "store_h out of bounds");
            // SAFETY: the assert keeps the 16-byte write inside `s`, borrowed
            // mutably; storeu needs no alignment; AVX2+F16C CPU as above.
            unsafe {
                _mm_storeu_si128(
                    s.as_mut_ptr().add(i).cast(),
                    _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(self.0),
                )
            }
        }
        #[inline(always)]
        fn load_strided_h<const N: usize>(s: &[u16], base: usize, stride: usize) -> [Self; N] {
            assert!(
                N > 0
                    && base
                        .checked_add((N - 1) * stride + 8)
                        .is_some_and(|end| end <= s.len()),
                "load_strided_h out of bounds"
            );
            let p = s.as_ptr();
            // SAFETY: the assert shows every 8-value read at base + i * stride
            // (i < N) lies inside `s`; AVX2+F16C CPU as above.
            std::array::from_fn(|i| {
                Self(unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p.add(base + i * stride).cast())) })
            })
        }
        #[inline(always)]
        fn store_strided_h<const N: usize>(
            v: &[Self; N],
            n: usize,
            s: &mut [u16],
            base: usize,
            stride: usize,
        ) {
            let n = n.min(N);
            if n == 0 {
                return;
            }
            assert!(
                base.checked_add((n - 1) * stride + 8)
                    .is_some_and(|end| end <= s.len()),
                "store_strided_h out of bounds"
            );
            let p = s.as_mut_ptr();
            for (i, x) in v.iter().enumerate().take(n) {
                // SAFETY: the assert shows writes 0..n at base + i * stride lie
                // inside `s`, borrowed mutably; AVX2+F16C CPU as above.
                unsafe {
                    _mm_storeu_si128(
                        p.add(base + i * stride).cast(),
                        _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(x.0),
                    )
                }
            }
        }
        #[inline(always)]
        fn panel_6x16(
            a: &[f32],
            b: &[f32],
            b_off: usize,
            b_stride: usize,
            m: &mut [f32],
            m_off: usize,
            m_stride: usize,
        ) {
            let k_len = a.len() / 16;
            assert!(
                b_off
                    .checked_add(5 * b_stride + k_len)
                    .is_some_and(|end| end <= b.len()),
                "panel_6x16: b out of bounds"
            );
            assert!(
                m_off
                    .checked_add(5 * m_stride + 16)
                    .is_some_and(|end| end <= m.len()),
                "panel_6x16: m out of bounds"
            );
            let (ap, bp, mp) = (a.as_ptr(), b.as_ptr(), m.as_mut_ptr());
            // SAFETY: every a read is at 16 k + 8 + 7 < 16 k_len <= a.len(); every
            // b read at b_off + j b_stride + k < b_off + 5 b_stride + k_len <= b.len();
            // every m write ends at m_off + 5 m_stride + 16 <= m.len() (asserts
            // above); `m` is borrowed mutably; AVX2 CPU as above.
            unsafe {
                let z = _mm256_setzero_ps();
                let mut c = [[z; 2]; 6];
                for k in 0..k_len {
                    let a0 = _mm256_loadu_ps(ap.add(16 * k));
                    let a1 = _mm256_loadu_ps(ap.add(16 * k + 8));
                    for j in 0..6 {
                        let bj = _mm256_broadcast_ss(&*bp.add(b_off + j * b_stride + k));
                        c[j][0] = _mm256_fmadd_ps(a0, bj, c[j][0]);
                        c[j][1] = _mm256_fmadd_ps(a1, bj, c[j][1]);
                    }
                }
                for j in 0..6 {
                    _mm256_storeu_ps(mp.add(m_off + j * m_stride), c[j][0]);
                    _mm256_storeu_ps(mp.add(m_off + j * m_stride + 8), c[j][1]);
                }
            }
        }
        #[inline(always)]
        fn add(self, o: Self) -> Self {
            // SAFETY: only reachable on an AVX2+FMA CPU (see the type's doc).
            Self(unsafe { _mm256_add_ps(self.0, o.0) })
        }
        #[inline(always)]
        fn sub(self, o: Self) -> Self {
            // SAFETY: only reachable on an AVX2+FMA CPU (see the type's doc).
            Self(unsafe { _mm256_sub_ps(self.0, o.0) })
        }
        #[inline(always)]
        fn mul(self, o: Self) -> Self {
            // SAFETY: only reachable on an AVX2+FMA CPU (see the type's doc).
            Self(unsafe { _mm256_mul_ps(self.0, o.0) })
        }
        #[inline(always)]
        fn mul_add(self, b: Self, c: Self) -> Self {
            // SAFETY: only reachable on an AVX2+FMA CPU (see the type's doc).
            Self(unsafe { _mm256_fmadd_ps(self.0, b.0, c.0) })
        }
        #[inline(always)]
        fn max(self, o: Self) -> Self {
            // SAFETY: only reachable on an AVX2+FMA CPU (see the type's doc).
            Self(unsafe { _mm256_max_ps(self.0, o.0) })
        }
        #[inline(always)]
        fn min(self, o: Self) -> Self {
            // SAFETY: only reachable on an AVX2+FMA CPU (see the type's doc).
            Self(unsafe { _mm256_min_ps(self.0, o.0) })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Axpy<'a>(&'a [f32], &'a mut [f32]);
    impl Kernel for Axpy<'_> {
        type Output = ();
        fn run<V: F32x8>(self) {
            for (x, y) in self.0.chunks_exact(8).zip(self.1.chunks_exact_mut(8)) {
                V::splat(2.0)
                    .mul_add(V::load(x), V::load(y))
                    .max(V::zero())
                    .store(y);
            }
        }
    }

    struct HalfRoundTrip<'a>(&'a [f32], &'a mut [u16], &'a mut [f32]);
    impl Kernel for HalfRoundTrip<'_> {
        type Output = ();
        fn run<V: F32x8>(self) {
            for i in (0..self.0.len()).step_by(8) {
                V::load_at(self.0, i).store_h(self.1, i);
                V::load_h(self.1, i).store_at(self.2, i);
            }
        }
    }

    #[test]
    fn half_conversions_agree_and_round_to_nearest() {
        let x: Vec<f32> = (0..64)
            .map(|i| (i as f32 - 31.5) * 0.3377)
            .chain(
                [65504.0, 1e-8, -0.0, 1.0 + 1.0 / 4096.0]
                    .into_iter()
                    .cycle()
                    .take(8),
            )
            .collect();
        let (mut h1, mut h2) = (vec![0u16; x.len()], vec![0u16; x.len()]);
        let (mut y1, mut y2) = (vec![0f32; x.len()], vec![0f32; x.len()]);
        dispatch(HalfRoundTrip(&x, &mut h1, &mut y1));
        dispatch_portable(HalfRoundTrip(&x, &mut h2, &mut y2));
        assert_eq!(h1, h2);
        for (a, b) in x.iter().zip(&y1) {
            assert!((a - b).abs() <= a.abs() / 2048.0 + 1e-7, "{a} -> {b}");
        }
    }

    #[test]
    fn dispatched_and_portable_paths_agree() {
        let x: Vec<f32> = (0..64).map(|i| i as f32 - 20.0).collect();
        let mut a = vec![1.0; 64];
        let mut b = vec![1.0; 64];
        dispatch(Axpy(&x, &mut a));
        dispatch_portable(Axpy(&x, &mut b));
        assert_eq!(a, b);
        assert_eq!(a[0], 0.0);
        assert_eq!(a[63], 87.0);
    }
}
