//! The cheap layers: PReLU, pixel shuffle, resizes, weighted addition and
//! channel concatenation.
//!
//! They touch few channels (an upscaler's RGB head) or run once per frame,
//! so they are plain scalar loops, parallel over rows.

use rayon::prelude::*;

use super::tensor::{Elem, Tensor};
use crate::model::ncnn::{Activation, Dense, Interp, InterpMode};

/// Applies PReLU in place (one slope, or one per channel).
pub fn prelu(t: &mut Tensor, slopes: &[f32]) {
    let (h, w, c) = (t.h, t.w, t.c);
    let rows: Vec<&mut [f32]> = t.bands_mut(1).take(h).collect();
    rows.into_par_iter().for_each(|row| {
        for px in row[c..(w + 1) * c].chunks_exact_mut(c) {
            for (ch, v) in px.iter_mut().enumerate() {
                if *v < 0.0 {
                    *v *= slopes[ch.min(slopes.len() - 1)];
                }
            }
        }
    });
}

/// Depth-to-space in PyTorch order: out(y*r+i, x*r+j, ch) = in(y, x, ch*r*r + i*r + j).
///
/// `out` must be `(h*r) x (w*r) x (c/(r*r))`.
pub fn pixel_shuffle(t: &Tensor, r: usize, out: &mut Tensor) {
    let oc = t.c / (r * r);
    assert_eq!((out.h, out.w, out.c), (t.h * r, t.w * r, oc));
    let (ow, h) = (out.w, out.h);
    let rows: Vec<(usize, &mut [f32])> = out.bands_mut(1).take(h).enumerate().collect();
    rows.into_par_iter().for_each(|(oy, row)| {
        let (y, i) = (oy / r, oy % r);
        let src = t.row(y);
        for ox in 0..ow {
            let (x, j) = (ox / r, ox % r);
            for ch in 0..oc {
                row[(ox + 1) * oc + ch] = src[x * t.c + ch * r * r + i * r + j];
            }
        }
    });
}

/// Output size of a resize, as ncnn computes it (truncating).
pub fn interp_size(p: &Interp, h: usize, w: usize) -> (usize, usize) {
    (
        (h as f32 * p.scale_h) as usize,
        (w as f32 * p.scale_w) as usize,
    )
}

/// Resizes with the layer's kernel into `out` (sized by [`interp_size`]).
pub fn interp(t: &Tensor, p: &Interp, out: &mut Tensor) {
    assert_eq!((out.h, out.w, out.c), {
        let (h, w) = interp_size(p, t.h, t.w);
        (h, w, t.c)
    });
    match p.mode {
        InterpMode::Nearest => nearest(t, p, out),
        InterpMode::Bicubic => bicubic(t, out),
    }
}

fn nearest(t: &Tensor, p: &Interp, out: &mut Tensor) {
    let (c, oh, ow) = (t.c, out.h, out.w);
    let (hs, ws) = (1.0 / p.scale_h, 1.0 / p.scale_w);
    let rows: Vec<(usize, &mut [f32])> = out.bands_mut(1).take(oh).enumerate().collect();
    rows.into_par_iter().for_each(|(y, row)| {
        let sy = ((y as f32 * hs) as usize).min(t.h - 1);
        let src = t.row(sy);
        for x in 0..ow {
            let sx = ((x as f32 * ws) as usize).min(t.w - 1);
            row[(x + 1) * c..(x + 2) * c].copy_from_slice(&src[sx * c..(sx + 1) * c]);
        }
    });
}

/// Taps and weights of a 1-D bicubic resize (Keys A = -0.75, half-pixel
/// centres, edge samples repeated), matching ncnn's `cubic_coeffs`.
fn cubic_taps(src: usize, dst: usize) -> Vec<([usize; 4], [f32; 4])> {
    const A: f32 = -0.75;
    let scale = src as f64 / dst as f64;
    (0..dst)
        .map(|d| {
            let f = ((d as f64 + 0.5) * scale - 0.5) as f32;
            let s = f.floor();
            let fx = f - s;
            let (f0, f1, f2) = (fx + 1.0, fx, 1.0 - fx);
            let c0 = A * f0 * f0 * f0 - 5.0 * A * f0 * f0 + 8.0 * A * f0 - 4.0 * A;
            let c1 = (A + 2.0) * f1 * f1 * f1 - (A + 3.0) * f1 * f1 + 1.0;
            let c2 = (A + 2.0) * f2 * f2 * f2 - (A + 3.0) * f2 * f2 + 1.0;
            let c3 = 1.0 - c0 - c1 - c2;
            let s = s as isize;
            let clamp = |i: isize| i.clamp(0, src as isize - 1) as usize;
            (
                [clamp(s - 1), clamp(s), clamp(s + 1), clamp(s + 2)],
                [c0, c1, c2, c3],
            )
        })
        .collect()
}

fn bicubic(t: &Tensor, out: &mut Tensor) {
    let (c, oh, ow) = (t.c, out.h, out.w);
    let xt = cubic_taps(t.w, ow);
    let yt = cubic_taps(t.h, oh);
    let rows: Vec<(usize, &mut [f32])> = out.bands_mut(1).take(oh).enumerate().collect();
    rows.into_par_iter().for_each(|(y, row)| {
        let (ys, yw) = yt[y];
        // Horizontal pass on the four source rows, then the vertical blend.
        let mut hrows = vec![vec![0.0f32; ow * c]; 4];
        for (k, hr) in hrows.iter_mut().enumerate() {
            let src = t.row(ys[k]);
            for (x, (xs, xw)) in xt.iter().enumerate() {
                for ch in 0..c {
                    hr[x * c + ch] = src[xs[0] * c + ch] * xw[0]
                        + src[xs[1] * c + ch] * xw[1]
                        + src[xs[2] * c + ch] * xw[2]
                        + src[xs[3] * c + ch] * xw[3];
                }
            }
        }
        for i in 0..ow * c {
            row[c + i] = hrows[0][i] * yw[0]
                + hrows[1][i] * yw[1]
                + hrows[2][i] * yw[2]
                + hrows[3][i] * yw[3];
        }
    });
}

/// Element-wise `a + b` (same shape), written into `a`.
pub fn add_into(a: &mut Tensor, b: &Tensor, coeffs: [f32; 2]) {
    assert_eq!((a.h, a.w, a.c), (b.h, b.w, b.c), "add: shape mismatch");
    let h = a.h;
    let [ka, kb] = coeffs;
    let rows: Vec<(usize, &mut [f32])> = a.bands_mut(1).take(h).enumerate().collect();
    rows.into_par_iter().for_each(|(y, row)| {
        let n = b.w * b.c;
        let d = &mut row[b.c..b.c + n];
        if coeffs == [1.0, 1.0] {
            d.iter_mut().zip(b.row(y)).for_each(|(d, s)| *d += s);
        } else {
            d.iter_mut()
                .zip(b.row(y))
                .for_each(|(d, s)| *d = ka * *d + kb * s);
        }
    });
}

/// Joins `srcs` along the channel axis into `out` (`h x w x` the sum of
/// their channels), storing in `out`'s element type.
pub fn concat<E: Elem>(srcs: &[&Tensor], out: &mut Tensor<E>) {
    let (h, w, oc) = (out.h, out.w, out.c);
    assert!(
        srcs.iter().all(|s| (s.h, s.w) == (h, w)),
        "concat: size mismatch"
    );
    assert_eq!(
        srcs.iter().map(|s| s.c).sum::<usize>(),
        oc,
        "concat: channels"
    );
    let rows: Vec<(usize, &mut [E])> = out.bands_mut(1).take(h).enumerate().collect();
    rows.into_par_iter().for_each(|(y, row)| {
        let row = &mut row[oc..(w + 1) * oc];
        let mut at = 0;
        for s in srcs {
            let c = s.c;
            for (dst, src) in row.chunks_exact_mut(oc).zip(s.row(y).chunks_exact(c)) {
                for (d, v) in dst[at..at + c].iter_mut().zip(src) {
                    *d = E::from_f32(*v);
                }
            }
            at += c;
        }
    });
}

/// Copies the `out.h x out.w` window of `t` that starts at (`top`, `left`) into `out`.
pub fn crop<E: Elem>(t: &Tensor<E>, top: usize, left: usize, out: &mut Tensor<E>) {
    let (h, w, c) = (out.h, out.w, out.c);
    assert!(
        c == t.c && top + h <= t.h && left + w <= t.w,
        "crop: out of range"
    );
    let rows: Vec<(usize, &mut [E])> = out.bands_mut(1).take(h).enumerate().collect();
    rows.into_par_iter().for_each(|(y, row)| {
        row[c..(w + 1) * c].copy_from_slice(&t.row(y + top)[left * c..(left + w) * c]);
    });
}

/// The mean of every channel (a 1x1 tensor), summed in f64.
pub fn global_avg_pool(t: &Tensor) -> Tensor {
    let c = t.c;
    let sums = (0..t.h)
        .into_par_iter()
        .map(|y| {
            let mut s = vec![0.0f64; c];
            for px in t.row(y).chunks_exact(c) {
                for (a, v) in s.iter_mut().zip(px) {
                    *a += f64::from(*v);
                }
            }
            s
        })
        .reduce(
            || vec![0.0f64; c],
            |mut a, b| {
                a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
                a
            },
        );
    let n = (t.h * t.w) as f64;
    let means: Vec<f32> = sums.iter().map(|s| (s / n) as f32).collect();
    Tensor::from_hwc(1, 1, c, &means)
}

/// A fully connected layer on a 1x1 tensor.
pub fn dense(x: &Tensor, d: &Dense) -> Tensor {
    assert_eq!((x.h, x.w, x.c), (1, 1, d.in_c));
    let v = x.pixel(0, 0);
    let out: Vec<f32> = (0..d.out_c)
        .map(|o| {
            let w = &d.weights[o * d.in_c..(o + 1) * d.in_c];
            let y = d.bias[o] + w.iter().zip(v).map(|(a, b)| a * b).sum::<f32>();
            match d.act {
                Activation::Identity => y,
                Activation::Relu => y.max(0.0),
                Activation::LeakyRelu(s) => {
                    if y < 0.0 {
                        y * s
                    } else {
                        y
                    }
                }
                Activation::Sigmoid => 1.0 / (1.0 + (-y).exp()),
            }
        })
        .collect();
    Tensor::from_hwc(1, 1, d.out_c, &out)
}

/// `a *= b`, where `b` has `a`'s shape or is 1x1 (one factor per channel).
pub fn mul_into(a: &mut Tensor, b: &Tensor) {
    assert_eq!(a.c, b.c, "mul: channel mismatch");
    let per_channel = (b.h, b.w) == (1, 1);
    assert!(
        per_channel || (a.h, a.w) == (b.h, b.w),
        "mul: shape mismatch"
    );
    let (h, w, c) = (a.h, a.w, a.c);
    let rows: Vec<(usize, &mut [f32])> = a.bands_mut(1).take(h).enumerate().collect();
    rows.into_par_iter().for_each(|(y, row)| {
        let d = &mut row[c..(w + 1) * c];
        if per_channel {
            let f = b.pixel(0, 0);
            for px in d.chunks_exact_mut(c) {
                px.iter_mut().zip(f).for_each(|(v, f)| *v *= f);
            }
        } else {
            d.iter_mut().zip(b.row(y)).for_each(|(v, f)| *v *= f);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_add_and_channel_concat() {
        let mut a = Tensor::from_hwc(1, 2, 2, &[1.0, 2.0, 3.0, 4.0]);
        let b = Tensor::from_hwc(1, 2, 2, &[10.0, 20.0, 30.0, 40.0]);
        add_into(&mut a, &b, [0.5, 2.0]);
        assert_eq!(a.to_hwc(), vec![20.5, 41.0, 61.5, 82.0]);
        let c = Tensor::from_hwc(1, 2, 1, &[7.0, 8.0]);
        let mut out: Tensor<u16> = Tensor::zeros(1, 2, 3);
        concat(&[&b, &c], &mut out);
        assert_eq!(out.to_hwc(), vec![10.0, 20.0, 7.0, 30.0, 40.0, 8.0]);
        assert!(
            out.data.iter().filter(|v| **v != 0).count() == 6,
            "border stays zero"
        );
    }

    #[test]
    fn squeeze_and_excitation_pieces() {
        let t = Tensor::from_hwc(2, 2, 2, &[1.0, 10.0, 2.0, 20.0, 3.0, 30.0, 6.0, 60.0]);
        let m = global_avg_pool(&t);
        assert_eq!(m.to_hwc(), vec![3.0, 30.0]);
        let d = Dense {
            out_c: 2,
            in_c: 2,
            weights: vec![1.0, 0.0, 0.0, -0.1],
            bias: vec![0.0, 0.0],
            act: Activation::Sigmoid,
        };
        let g = dense(&m, &d);
        let want = [1.0 / (1.0 + (-3.0f32).exp()), 1.0 / (1.0 + 3.0f32.exp())];
        assert_eq!(g.to_hwc(), want.to_vec());
        let mut a = t.clone();
        mul_into(&mut a, &g);
        assert_eq!(a.pixel(1, 1), &[6.0 * want[0], 60.0 * want[1]]);
        let mut out = Tensor::zeros(1, 1, 2);
        crop(&t, 1, 1, &mut out);
        assert_eq!(out.to_hwc(), vec![6.0, 60.0]);
    }

    #[test]
    fn pixel_shuffle_follows_pytorch_order() {
        // 1x1 pixel with 4 channels -> 2x2 pixel with 1 channel.
        let t = Tensor::from_hwc(1, 1, 4, &[1.0, 2.0, 3.0, 4.0]);
        let mut out = Tensor::zeros(2, 2, 1);
        pixel_shuffle(&t, 2, &mut out);
        assert_eq!(out.to_hwc(), vec![1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn nearest_repeats_and_bicubic_keeps_constants() {
        let t = Tensor::from_hwc(2, 2, 1, &[1.0, 2.0, 3.0, 4.0]);
        let mut up = Tensor::zeros(4, 4, 1);
        interp(
            &t,
            &Interp {
                mode: InterpMode::Nearest,
                scale_h: 2.0,
                scale_w: 2.0,
            },
            &mut up,
        );
        assert_eq!(up.to_hwc()[..4], [1.0, 1.0, 2.0, 2.0]);
        let flat = Tensor::from_hwc(8, 8, 2, &[0.5; 128]);
        let mut down = Tensor::zeros(6, 6, 2);
        interp(
            &flat,
            &Interp {
                mode: InterpMode::Bicubic,
                scale_h: 0.75,
                scale_w: 0.75,
            },
            &mut down,
        );
        assert!(down.to_hwc().iter().all(|v| (v - 0.5).abs() < 1e-6));
    }
}
