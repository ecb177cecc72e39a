//! Direct convolution, vectorised over output channels.
//!
//! Used where Winograd does not pay or does not apply: the first layer of an
//! upscaler (3 input channels), 1x1 kernels, channel counts that are not
//! multiples of the vector width. Kernels up to 3x3 ("same" padding) read the
//! tensor's one-pixel zero border; larger ones are refused when the network
//! is compiled.

use rayon::prelude::*;

use super::simd::{F32x8, Kernel, dispatch};
use super::tensor::{Elem, Tensor};
use crate::model::ncnn::Conv;

/// Output channels handled per pass (eight vectors of accumulators).
const CO_CHUNK: usize = 64;

/// A convolution prepared for the direct path.
#[derive(Debug, Clone)]
pub struct Direct {
    in_c: usize,
    out_c: usize,
    k: usize,
    /// Output channels rounded up to a multiple of 8.
    co8: usize,
    /// Weights `[ky][kx][ci][co8]`, zero in the rounding channels.
    w: Vec<f32>,
    bias: Vec<f32>,
    slopes: Option<Vec<f32>>,
}

impl Direct {
    /// Whether the padded tensor layout can feed this kernel size.
    pub fn supports(conv: &Conv) -> bool {
        conv.kh == conv.kw && conv.kw <= 3 && conv.pad == conv.kw / 2
    }

    /// Repacks `conv`'s weights (which must be [`supported`](Self::supports)).
    pub fn new(conv: &Conv, slopes: Option<Vec<f32>>) -> Self {
        assert!(Self::supports(conv));
        let (in_c, out_c, k) = (conv.in_c, conv.out_c, conv.kw);
        let co8 = out_c.next_multiple_of(8);
        let mut w = vec![0.0; k * k * in_c * co8];
        for co in 0..out_c {
            for ci in 0..in_c {
                for ky in 0..k {
                    for kx in 0..k {
                        w[((ky * k + kx) * in_c + ci) * co8 + co] =
                            conv.weights[((co * in_c + ci) * k + ky) * k + kx];
                    }
                }
            }
        }
        let mut bias = conv.bias.clone();
        bias.resize(co8, 0.0);
        let slopes = slopes.map(|mut s| {
            s.resize(co8, 0.0);
            s
        });
        Self {
            in_c,
            out_c,
            k,
            co8,
            w,
            bias,
            slopes,
        }
    }

    /// Output channels.
    pub fn out_c(&self) -> usize {
        self.out_c
    }

    /// Convolves `input` into `out` (same height and width).
    pub fn forward<EI: Elem, EO: Elem>(&self, input: &Tensor<EI>, out: &mut Tensor<EO>) {
        assert_eq!(input.c, self.in_c);
        assert_eq!((out.h, out.w, out.c), (input.h, input.w, self.out_c));
        let h = out.h;
        let rows: Vec<(usize, &mut [EO])> = out.bands_mut(1).take(h).enumerate().collect();
        rows.into_par_iter().for_each(|(y, row)| {
            dispatch(RowTask {
                conv: self,
                input,
                y,
                row,
            })
        });
    }
}

struct RowTask<'a, EI: Elem, EO: Elem> {
    conv: &'a Direct,
    input: &'a Tensor<EI>,
    y: usize,
    row: &'a mut [EO],
}

impl<EI: Elem, EO: Elem> Kernel for RowTask<'_, EI, EO> {
    type Output = ();

    #[inline(always)]
    fn run<V: F32x8>(self) {
        let RowTask {
            conv,
            input,
            y,
            row,
        } = self;
        let (k, in_c, co8, out_c) = (conv.k, conv.in_c, conv.co8, conv.out_c);
        let off = 1 - k / 2; // padded index of the first tap
        for x in 0..input.w {
            for c0 in (0..co8).step_by(CO_CHUNK) {
                let nv = ((co8 - c0).min(CO_CHUNK)) / 8;
                let mut acc = [V::zero(); CO_CHUNK / 8];
                for (i, a) in acc.iter_mut().enumerate().take(nv) {
                    *a = V::load(&conv.bias[c0 + i * 8..]);
                }
                for ky in 0..k {
                    let py = y + ky + off;
                    for kx in 0..k {
                        let px = x + kx + off;
                        let src = &input.data[(py * input.pw + px) * in_c..][..in_c];
                        let wk = &conv.w[(ky * k + kx) * in_c * co8..][..in_c * co8];
                        for (ci, s) in src.iter().enumerate() {
                            let sv = V::splat(s.to_f32());
                            let wrow = &wk[ci * co8 + c0..];
                            for (i, a) in acc.iter_mut().enumerate().take(nv) {
                                *a = V::load(&wrow[i * 8..]).mul_add(sv, *a);
                            }
                        }
                    }
                }
                let dst = &mut row[(x + 1) * out_c..(x + 2) * out_c];
                for (i, a) in acc.iter().enumerate().take(nv) {
                    let mut v = *a;
                    if let Some(s) = &conv.slopes {
                        let s = V::load(&s[c0 + i * 8..]);
                        v = v.max(V::zero()).add(s.mul(v.min(V::zero())));
                    }
                    let start = c0 + i * 8;
                    if start + 8 <= out_c {
                        EO::store_strided(&[v], 1, dst, start, 8);
                    } else {
                        let mut tmp = [0.0f32; 8];
                        v.store(&mut tmp);
                        for (d, t) in dst[start..].iter_mut().zip(tmp) {
                            *d = EO::from_f32(t);
                        }
                    }
                }
            }
        }
    }
}

/// Straightforward scalar convolution (f64 accumulation) used as the oracle in tests.
pub fn reference_conv(conv: &Conv, slopes: Option<&[f32]>, input: &Tensor) -> Vec<f32> {
    // (f32 input only: the oracle should not share the kernels' conversions.)
    let (h, w, k, pad) = (
        input.h as isize,
        input.w as isize,
        conv.kw as isize,
        conv.pad as isize,
    );
    let mut out = Vec::with_capacity((h * w) as usize * conv.out_c);
    for y in 0..h {
        for x in 0..w {
            for co in 0..conv.out_c {
                let mut s = conv.bias[co] as f64;
                for ci in 0..conv.in_c {
                    for ky in 0..k {
                        for kx in 0..k {
                            let (iy, ix) = (y + ky - pad, x + kx - pad);
                            if iy < 0 || ix < 0 || iy >= h || ix >= w {
                                continue;
                            }
                            let wv = conv.weights[((co * conv.in_c + ci) * conv.kw + ky as usize)
                                * conv.kw
                                + kx as usize];
                            s += wv as f64
                                * input.pixel(iy as usize, ix as usize)[ci].to_f32() as f64;
                        }
                    }
                }
                let mut v = s as f32;
                if let Some(sl) = slopes {
                    let a = sl[co.min(sl.len() - 1)];
                    if v < 0.0 {
                        v *= a;
                    }
                }
                out.push(v);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_reference_for_first_layer_and_1x1() {
        let vals = |n: usize| {
            (0..n)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
                .collect::<Vec<_>>()
        };
        for (k, ci, co) in [(3, 3, 64), (1, 8, 12), (3, 5, 70)] {
            let conv = Conv {
                out_c: co,
                in_c: ci,
                kh: k,
                kw: k,
                pad: k / 2,
                weights: vals(co * ci * k * k),
                bias: vals(co),
                stride: 1,
                act: crate::model::ncnn::Activation::Identity,
            };
            let slopes = vals(co);
            let input: Tensor = Tensor::from_hwc(7, 11, ci, &vals(7 * 11 * ci));
            let mut out: Tensor = Tensor::zeros(7, 11, co);
            Direct::new(&conv, Some(slopes.clone())).forward(&input, &mut out);
            let want = reference_conv(&conv, Some(&slopes), &input);
            let err = out
                .to_hwc()
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(err < 1e-4, "k={k} {ci}->{co}: {err}");
        }
    }
}
