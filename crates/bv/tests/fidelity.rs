//! Fidelity: our engine against the reference runtime (the official ncnn
//! wheel, fp32) on real Big Buck Bunny frames, and tiled against untiled.

mod common;

use common::*;

const W: usize = 320;
const H: usize = 180;
const FRAMES: usize = 3;

fn reference(scale: u32, frames: &[u8]) -> Vec<u8> {
    let d = data_dir();
    let m = d.join("models");
    let mut cmd = std::process::Command::new(d.join("venv/bin/python"));
    cmd.arg(repo().join("tests/reference/ncnn_upscale.py"))
        .arg(m.join(format!("realesr-animevideov3-x{scale}.param")))
        .arg(m.join(format!("realesr-animevideov3-x{scale}.bin")))
        .args([W.to_string(), H.to_string()]);
    pipe(cmd, frames)
}

fn ours(scale: u32, tile: usize, frames: &[u8]) -> Vec<u8> {
    let mut cmd = bv();
    cmd.args([
        "infer-pipe",
        "--scale",
        &scale.to_string(),
        "--tile",
        &tile.to_string(),
    ])
    .args([
        "--width",
        &W.to_string(),
        "--height",
        &H.to_string(),
        "--threads",
        "2",
    ]);
    pipe(cmd, frames)
}

fn frames() -> Vec<u8> {
    decode_rgb(
        &data_dir().join("samples/bigbuckbunny.mp4"),
        FRAMES,
        Some((W, H)),
        30,
    )
}

fn per_frame_psnr(a: &[u8], b: &[u8], scale: usize) -> Vec<f64> {
    let n = W * H * 3 * scale * scale;
    assert_eq!(a.len(), n * FRAMES, "output size");
    assert_eq!(b.len(), n * FRAMES, "reference size");
    a.chunks(n)
        .zip(b.chunks(n))
        .map(|(x, y)| psnr(x, y))
        .collect()
}

#[test]
fn x4_matches_ncnn_fp32_at_50_db() {
    let f = frames();
    let p = per_frame_psnr(&ours(4, 0, &f), &reference(4, &f), 4);
    eprintln!("x4 PSNR vs ncnn fp32 per frame: {p:?}");
    assert!(p.iter().all(|v| *v >= 50.0), "{p:?}");
}

#[test]
fn x2_and_x3_match_ncnn_fp32_at_50_db() {
    let f = frames();
    for scale in [2u32, 3] {
        let p = per_frame_psnr(&ours(scale, 0, &f), &reference(scale, &f), scale as usize);
        eprintln!("x{scale} PSNR vs ncnn fp32 per frame: {p:?}");
        assert!(p.iter().all(|v| *v >= 50.0), "x{scale}: {p:?}");
    }
}

#[test]
fn tiled_equals_untiled_at_50_db() {
    let f = frames();
    let whole = ours(4, 0, &f);
    for tile in [64usize, 100] {
        let p = per_frame_psnr(&ours(4, tile, &f), &whole, 4);
        eprintln!("tile {tile} vs untiled PSNR per frame: {p:?}");
        assert!(p.iter().all(|v| *v >= 50.0), "tile {tile}: {p:?}");
    }
}

#[test]
fn a_plain_bicubic_upscale_does_not_pass_for_the_model() {
    // Guards the guard: the 50 dB bar must be able to fail.
    let f = frames();
    let bicubic = {
        let mut v = Vec::new();
        for i in 0..FRAMES {
            let tmp = tempfile::tempdir().unwrap();
            let raw = tmp.path().join("f.rgb");
            std::fs::write(&raw, &f[i * W * H * 3..(i + 1) * W * H * 3]).unwrap();
            let out = std::process::Command::new("ffmpeg")
                .args([
                    "-v",
                    "error",
                    "-f",
                    "rawvideo",
                    "-pix_fmt",
                    "rgb24",
                    "-s",
                    &format!("{W}x{H}"),
                    "-i",
                ])
                .arg(&raw)
                .args([
                    "-vf",
                    &format!("scale={}:{}:flags=bicubic", W * 4, H * 4),
                    "-f",
                    "rawvideo",
                    "-pix_fmt",
                    "rgb24",
                    "-",
                ])
                .output()
                .unwrap();
            v.extend(out.stdout);
        }
        v
    };
    let p = per_frame_psnr(&bicubic, &reference(4, &f), 4);
    assert!(p.iter().all(|v| *v < 40.0), "{p:?}");
}
