//! Convolutions of any shape: strided, even-sized, transposed.
//!
//! Real-CUGAN downsamples with 2x2 stride-2 convolutions and upsamples with
//! transposed convolutions (2x2 and 4x4, stride 2). They are a small share
//! of its work (its 3x3 layers run on the Winograd kernels), so this is one
//! straightforward kernel: per output pixel, an accumulator over the output
//! channels, fed tap by tap with weights laid out `[ky][kx][ci][co]` so the
//! inner loop is a contiguous multiply-add the compiler vectorises.

use rayon::prelude::*;

use super::tensor::{Elem, Tensor};
use crate::model::ncnn::Conv;

/// A convolution or transposed convolution with a fused PReLU.
pub struct GenericConv {
    in_c: usize,
    out_c: usize,
    k: usize,
    stride: usize,
    pad: usize,
    transposed: bool,
    /// `[ky][kx][ci][co]`.
    w: Vec<f32>,
    bias: Vec<f32>,
    slopes: Option<Vec<f32>>,
}

impl GenericConv {
    /// Repacks `conv` (`[out_c][in_c][kh][kw]` in both cases).
    pub fn new(conv: &Conv, slopes: Option<Vec<f32>>, transposed: bool) -> Self {
        let (in_c, out_c, k) = (conv.in_c, conv.out_c, conv.kw);
        let mut w = vec![0.0; k * k * in_c * out_c];
        for co in 0..out_c {
            for ci in 0..in_c {
                for ky in 0..k {
                    for kx in 0..k {
                        w[((ky * k + kx) * in_c + ci) * out_c + co] =
                            conv.weights[((co * in_c + ci) * k + ky) * k + kx];
                    }
                }
            }
        }
        Self {
            in_c,
            out_c,
            k,
            stride: conv.stride,
            pad: conv.pad,
            transposed,
            w,
            bias: conv.bias.clone(),
            slopes,
        }
    }

    /// Output channels.
    pub fn out_c(&self) -> usize {
        self.out_c
    }

    /// Output size along one axis for an input of `n` (`None`: too small).
    pub fn out_len(&self, n: usize) -> Option<usize> {
        if self.transposed {
            ((n.max(1) - 1) * self.stride + self.k)
                .checked_sub(2 * self.pad)
                .filter(|v| *v > 0)
        } else {
            (n + 2 * self.pad)
                .checked_sub(self.k)
                .map(|v| v / self.stride + 1)
        }
    }

    /// The input rows or columns (and kernel taps) that feed output `o`.
    fn taps(&self, o: usize, n: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
        let (k, s, p) = (self.k, self.stride, self.pad);
        (0..k).filter_map(move |t| {
            let i = if self.transposed {
                // out[i * s + t - p] += w[t] * in[i]
                let v = (o + p).checked_sub(t)?;
                if v % s != 0 {
                    return None;
                }
                v / s
            } else {
                // out[o] += w[t] * in[o * s + t - p]
                (o * s + t).checked_sub(p)?
            };
            (i < n).then_some((i, t))
        })
    }

    /// Runs on `x` into `out`, which must be `out_len(h) x out_len(w) x out_c`.
    pub fn forward<E: Elem>(&self, x: &Tensor<E>, out: &mut Tensor) {
        assert_eq!(x.c, self.in_c);
        assert_eq!(
            (Some(out.h), Some(out.w), out.c),
            (self.out_len(x.h), self.out_len(x.w), self.out_c)
        );
        let (oh, ow, oc, ic, k) = (out.h, out.w, self.out_c, self.in_c, self.k);
        let rows: Vec<(usize, &mut [f32])> = out.bands_mut(1).take(oh).enumerate().collect();
        rows.into_par_iter().for_each(|(oy, row)| {
            let mut acc = vec![0.0f32; oc];
            let mut px = vec![0.0f32; ic];
            for ox in 0..ow {
                acc.copy_from_slice(&self.bias);
                for (iy, ky) in self.taps(oy, x.h) {
                    for (ix, kx) in self.taps(ox, x.w) {
                        for (p, v) in px.iter_mut().zip(x.pixel(iy, ix)) {
                            *p = v.to_f32();
                        }
                        let wt = &self.w[(ky * k + kx) * ic * oc..][..ic * oc];
                        for (v, wc) in px.iter().zip(wt.chunks_exact(oc)) {
                            for (a, w) in acc.iter_mut().zip(wc) {
                                *a += v * w;
                            }
                        }
                    }
                }
                if let Some(s) = &self.slopes {
                    for (a, s) in acc.iter_mut().zip(s) {
                        if *a < 0.0 {
                            *a *= s;
                        }
                    }
                }
                row[(ox + 1) * oc..(ox + 2) * oc].copy_from_slice(&acc);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ncnn::Activation;

    fn conv(k: usize, stride: usize, pad: usize, in_c: usize, out_c: usize) -> Conv {
        Conv {
            out_c,
            in_c,
            kh: k,
            kw: k,
            pad,
            stride,
            weights: (0..out_c * in_c * k * k)
                .map(|i| ((i * 37 % 11) as f32 - 5.0) / 7.0)
                .collect(),
            bias: (0..out_c).map(|i| i as f32 * 0.25).collect(),
            act: Activation::Identity,
        }
    }

    #[test]
    fn strided_convolution_matches_the_definition() {
        let c = conv(2, 2, 0, 3, 2);
        let (h, w) = (5, 6);
        let vals: Vec<f32> = (0..h * w * 3).map(|i| (i % 13) as f32 / 13.0).collect();
        let x: Tensor = Tensor::from_hwc(h, w, 3, &vals);
        let g = GenericConv::new(&c, None, false);
        let (oh, ow) = (g.out_len(h).unwrap(), g.out_len(w).unwrap());
        assert_eq!((oh, ow), (2, 3));
        let mut out: Tensor = Tensor::zeros(oh, ow, 2);
        g.forward(&x, &mut out);
        for oy in 0..oh {
            for ox in 0..ow {
                for co in 0..2 {
                    let mut want = c.bias[co];
                    for ci in 0..3 {
                        for ky in 0..2 {
                            for kx in 0..2 {
                                want += c.weights[((co * 3 + ci) * 2 + ky) * 2 + kx]
                                    * x.pixel(oy * 2 + ky, ox * 2 + kx)[ci];
                            }
                        }
                    }
                    assert!((out.pixel(oy, ox)[co] - want).abs() < 1e-5);
                }
            }
        }
    }

    #[test]
    fn transposed_convolution_scatters_and_crops() {
        // Checked by scattering every input pixel into a full-size buffer.
        let c = conv(4, 2, 3, 2, 3);
        let (h, w) = (4, 5);
        let vals: Vec<f32> = (0..h * w * 2).map(|i| (i % 7) as f32 / 7.0 - 0.3).collect();
        let x: Tensor = Tensor::from_hwc(h, w, 2, &vals);
        let g = GenericConv::new(&c, None, true);
        let (oh, ow) = (g.out_len(h).unwrap(), g.out_len(w).unwrap());
        assert_eq!((oh, ow), (2 * h - 4, 2 * w - 4));
        let (fh, fw) = ((h - 1) * 2 + 4, (w - 1) * 2 + 4);
        let mut full = vec![0.0f32; fh * fw * 3];
        for y in 0..h {
            for xx in 0..w {
                for ky in 0..4 {
                    for kx in 0..4 {
                        for co in 0..3 {
                            for ci in 0..2 {
                                full[((y * 2 + ky) * fw + xx * 2 + kx) * 3 + co] += c.weights
                                    [((co * 2 + ci) * 4 + ky) * 4 + kx]
                                    * x.pixel(y, xx)[ci];
                            }
                        }
                    }
                }
            }
        }
        let mut out: Tensor = Tensor::zeros(oh, ow, 3);
        g.forward(&x, &mut out);
        for oy in 0..oh {
            for ox in 0..ow {
                for co in 0..3 {
                    let want = full[((oy + 3) * fw + ox + 3) * 3 + co] + c.bias[co];
                    assert!((out.pixel(oy, ox)[co] - want).abs() < 1e-5);
                }
            }
        }
    }
}
