//! Activations: channel-last (HWC) f32 images inside a zero border.
//!
//! Every tensor keeps a one-pixel zero border on the top and left and enough
//! zero rows/columns on the bottom and right that a 3x3 convolution's
//! Winograd tiles (6x6 outputs reading 8x8 inputs) never leave the buffer.
//! Kernels therefore read without bounds branches, and only ever write the
//! valid interior, so the border stays zero for the next layer.
//!
//! Values are stored as f32, or as IEEE half precision between convolutions
//! (half the memory traffic; see docs/decisions/0003-half-precision-activations.md).

use super::simd::F32x8;

/// Output tile edge of the Winograd F(6x6, 3x3) convolution.
pub const TILE: usize = 6;

/// A storage type for activations: `f32`, or `u16` holding IEEE half-precision bits.
/// Arithmetic is always f32; these only load and store.
pub trait Elem: Copy + Default + Send + Sync + PartialEq + std::fmt::Debug + 'static {
    /// Widens to f32.
    fn to_f32(self) -> f32;
    /// Narrows from f32 (rounding to nearest).
    fn from_f32(v: f32) -> Self;
    /// Loads 8 values at `s[i..]`.
    fn load<V: F32x8>(s: &[Self], i: usize) -> V;
    /// Loads `N` vectors at `s[base + k * stride..]`.
    fn load_strided<V: F32x8, const N: usize>(s: &[Self], base: usize, stride: usize) -> [V; N];
    /// Stores the first `n` of `v` at `s[base + k * stride..]`.
    fn store_strided<V: F32x8, const N: usize>(
        v: &[V; N],
        n: usize,
        s: &mut [Self],
        base: usize,
        stride: usize,
    );
}

impl Elem for f32 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
    #[inline(always)]
    fn from_f32(v: f32) -> Self {
        v
    }
    #[inline(always)]
    fn load<V: F32x8>(s: &[Self], i: usize) -> V {
        V::load_at(s, i)
    }
    #[inline(always)]
    fn load_strided<V: F32x8, const N: usize>(s: &[Self], base: usize, stride: usize) -> [V; N] {
        V::load_strided(s, base, stride)
    }
    #[inline(always)]
    fn store_strided<V: F32x8, const N: usize>(
        v: &[V; N],
        n: usize,
        s: &mut [Self],
        base: usize,
        stride: usize,
    ) {
        V::store_strided(v, n, s, base, stride)
    }
}

impl Elem for u16 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        half::f16::from_bits(self).to_f32()
    }
    #[inline(always)]
    fn from_f32(v: f32) -> Self {
        half::f16::from_f32(v).to_bits()
    }
    #[inline(always)]
    fn load<V: F32x8>(s: &[Self], i: usize) -> V {
        V::load_h(s, i)
    }
    #[inline(always)]
    fn load_strided<V: F32x8, const N: usize>(s: &[Self], base: usize, stride: usize) -> [V; N] {
        V::load_strided_h(s, base, stride)
    }
    #[inline(always)]
    fn store_strided<V: F32x8, const N: usize>(
        v: &[V; N],
        n: usize,
        s: &mut [Self],
        base: usize,
        stride: usize,
    ) {
        V::store_strided_h(v, n, s, base, stride)
    }
}

/// An `h x w x c` image, stored with padding (see module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor<E: Elem = f32> {
    /// Valid height.
    pub h: usize,
    /// Valid width.
    pub w: usize,
    /// Channels (innermost).
    pub c: usize,
    /// Allocated rows (valid rows + border + tile slack).
    pub ph: usize,
    /// Allocated columns.
    pub pw: usize,
    /// `ph * pw * c` values; pixel (y, x) starts at `((y + 1) * pw + x + 1) * c`.
    pub data: Vec<E>,
}

impl<E: Elem> Tensor<E> {
    /// A zero tensor with the standard padded layout.
    pub fn zeros(h: usize, w: usize, c: usize) -> Self {
        let ph = h.div_ceil(TILE) * TILE + 2;
        let pw = w.div_ceil(TILE) * TILE + 2;
        Self {
            h,
            w,
            c,
            ph,
            pw,
            data: vec![E::default(); ph * pw * c],
        }
    }

    /// Builds a tensor from packed HWC values (`h * w * c` of them).
    pub fn from_hwc(h: usize, w: usize, c: usize, values: &[f32]) -> Self {
        assert_eq!(values.len(), h * w * c, "from_hwc: wrong value count");
        let mut t = Self::zeros(h, w, c);
        for y in 0..h {
            for (d, v) in t
                .row_mut(y)
                .iter_mut()
                .zip(&values[y * w * c..(y + 1) * w * c])
            {
                *d = E::from_f32(*v);
            }
        }
        t
    }

    /// Copies the valid interior out as packed HWC f32 values.
    pub fn to_hwc(&self) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.h * self.w * self.c);
        for y in 0..self.h {
            out.extend(self.row(y).iter().map(|v| v.to_f32()));
        }
        out
    }

    /// Offset of pixel (y, x) in `data`.
    #[inline(always)]
    pub fn offset(&self, y: usize, x: usize) -> usize {
        ((y + 1) * self.pw + x + 1) * self.c
    }

    /// The valid part of row `y` (`w * c` values).
    pub fn row(&self, y: usize) -> &[E] {
        let o = self.offset(y, 0);
        &self.data[o..o + self.w * self.c]
    }

    /// The valid part of row `y`, mutable.
    pub fn row_mut(&mut self, y: usize) -> &mut [E] {
        let o = self.offset(y, 0);
        let n = self.w * self.c;
        &mut self.data[o..o + n]
    }

    /// The channels of pixel (y, x).
    pub fn pixel(&self, y: usize, x: usize) -> &[E] {
        let o = self.offset(y, x);
        &self.data[o..o + self.c]
    }

    /// Mutable rows of padded storage starting at valid row 0, `rows` at a
    /// time, for writing disjoint bands in parallel. Band `i` starts at valid
    /// row `i * rows`; each slice begins at the padded column 0 of that row.
    pub fn bands_mut(&mut self, rows: usize) -> std::slice::ChunksMut<'_, E> {
        let row_len = self.pw * self.c;
        self.data[row_len..].chunks_mut(rows * row_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_keeps_values_and_zero_border() {
        let v: Vec<f32> = (0..5 * 7 * 3).map(|i| i as f32 + 1.0).collect();
        let t: Tensor = Tensor::from_hwc(5, 7, 3, &v);
        assert_eq!(t.to_hwc(), v);
        assert_eq!((t.ph, t.pw), (8, 14));
        let nonzero = t.data.iter().filter(|x| **x != 0.0).count();
        assert_eq!(nonzero, v.len());
        assert_eq!(t.pixel(4, 6), &v[v.len() - 3..]);
        let h: Tensor<u16> = Tensor::from_hwc(5, 7, 3, &v);
        assert_eq!(h.to_hwc(), v, "small integers are exact in half precision");
    }
}
