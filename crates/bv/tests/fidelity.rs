//! Fidelity: our engine against the reference runtime (the official ncnn
//! wheel, fp32) on real Big Buck Bunny frames, and tiled against untiled.

mod common;

use common::*;

const W: usize = 320;
const H: usize = 180;
const FRAMES: usize = 3;

/// Frames of one size, cut from the sample.
struct Clip {
    w: usize,
    h: usize,
    n: usize,
    rgb: Vec<u8>,
}

impl Clip {
    fn new(w: usize, h: usize, n: usize) -> Self {
        let rgb = decode_rgb(
            &data_dir().join("samples/bigbuckbunny.mp4"),
            n,
            Some((w, h)),
            30,
        );
        Self { w, h, n, rgb }
    }

    /// The official ncnn runtime on these frames.
    fn reference(&self, param: &str, bin: &str) -> Vec<u8> {
        self.reference_with(param, bin, &[])
    }

    /// The same, with extra flags for the reference script.
    fn reference_with(&self, param: &str, bin: &str, flags: &[&str]) -> Vec<u8> {
        let d = data_dir();
        let m = d.join("models");
        let mut cmd = std::process::Command::new(d.join("venv/bin/python"));
        cmd.arg(repo().join("tests/reference/ncnn_upscale.py"))
            .arg(m.join(param))
            .arg(m.join(bin))
            .args([self.w.to_string(), self.h.to_string()])
            .args(flags);
        pipe(cmd, &self.rgb)
    }

    /// Our engine on these frames.
    fn ours(&self, model: &str, scale: u32, tile: usize) -> Vec<u8> {
        let mut cmd = bv();
        cmd.args(["infer-pipe", "--model", model, "--device", "cpu"])
            .args(["--scale", &scale.to_string(), "--tile", &tile.to_string()])
            .args(["--width", &self.w.to_string()])
            .args(["--height", &self.h.to_string(), "--threads", "2"]);
        pipe(cmd, &self.rgb)
    }

    fn per_frame_psnr(&self, a: &[u8], b: &[u8], scale: usize) -> Vec<f64> {
        let n = self.w * self.h * 3 * scale * scale;
        assert_eq!(a.len(), n * self.n, "output size");
        assert_eq!(b.len(), n * self.n, "reference size");
        a.chunks(n)
            .zip(b.chunks(n))
            .map(|(x, y)| psnr(x, y))
            .collect()
    }
}

const ANIME: &str = "realesr-animevideov3";

fn anime_reference(clip: &Clip, scale: u32) -> Vec<u8> {
    clip.reference(
        &format!("{ANIME}-x{scale}.param"),
        &format!("{ANIME}-x{scale}.bin"),
    )
}

#[test]
fn x4_matches_ncnn_fp32_at_50_db() {
    let c = Clip::new(W, H, FRAMES);
    let p = c.per_frame_psnr(&c.ours(ANIME, 4, 0), &anime_reference(&c, 4), 4);
    eprintln!("x4 PSNR vs ncnn fp32 per frame: {p:?}");
    assert!(p.iter().all(|v| *v >= 50.0), "{p:?}");
}

#[test]
fn x2_and_x3_match_ncnn_fp32_at_50_db() {
    let c = Clip::new(W, H, FRAMES);
    for scale in [2u32, 3] {
        let ours = c.ours(ANIME, scale, 0);
        let p = c.per_frame_psnr(&ours, &anime_reference(&c, scale), scale as usize);
        eprintln!("x{scale} PSNR vs ncnn fp32 per frame: {p:?}");
        assert!(p.iter().all(|v| *v >= 50.0), "x{scale}: {p:?}");
    }
}

#[test]
fn tiled_equals_untiled_at_50_db() {
    let c = Clip::new(W, H, FRAMES);
    let whole = c.ours(ANIME, 4, 0);
    for tile in [64usize, 100] {
        let p = c.per_frame_psnr(&c.ours(ANIME, 4, tile), &whole, 4);
        eprintln!("tile {tile} vs untiled PSNR per frame: {p:?}");
        assert!(p.iter().all(|v| *v >= 50.0), "tile {tile}: {p:?}");
    }
}

const X4PLUS: &str = "realesrgan-x4plus";

#[test]
fn x4plus_matches_ncnn_fp32_at_50_db() {
    // RRDBNet is ~30x the work of animevideov3 per pixel: small frames.
    let c = Clip::new(128, 72, 2);
    let reference = c.reference(&format!("{X4PLUS}.param"), &format!("{X4PLUS}.bin"));
    let p = c.per_frame_psnr(&c.ours(X4PLUS, 4, 0), &reference, 4);
    eprintln!("x4plus PSNR vs ncnn fp32 per frame: {p:?}");
    assert!(p.iter().all(|v| *v >= 50.0), "{p:?}");
}

#[test]
fn x4plus_tiles_bound_memory_and_match_untiled_at_50_db() {
    // Its receptive field spans hundreds of pixels, so tiles get the capped
    // context (plan::MAX_CONTEXT) and must still be seamless; and its
    // automatic tiles are smaller than animevideov3's, as its activations
    // per pixel are larger.
    let store = bv_engine::model::ModelStore::new(data_dir().join("models"));
    let plan = |m: &str| {
        let model = store.load(m, 4).unwrap();
        bv_engine::plan::Plan::new(&model.graph).unwrap()
    };
    let (heavy, light) = (plan(X4PLUS), plan(ANIME));
    assert_eq!(heavy.radius, bv_engine::plan::MAX_CONTEXT);
    let cap = bv_engine::upscale::AUTO_TILE_PIXELS;
    eprintln!(
        "bytes per input pixel: x4plus {}, animevideov3 {}; automatic tile: {} and {} pixels",
        heavy.bytes_per_pixel,
        light.bytes_per_pixel,
        heavy.auto_tile_pixels(cap),
        light.auto_tile_pixels(cap)
    );
    assert!(heavy.bytes_per_pixel > 4 * light.bytes_per_pixel);
    assert!(
        heavy.auto_tile_pixels(cap) * heavy.bytes_per_pixel <= bv_engine::plan::TILE_BUDGET_BYTES
    );
    assert_eq!(
        light.auto_tile_pixels(cap),
        cap,
        "animevideov3 keeps its tiles"
    );
    let tiles = bv_engine::upscale::plan_tiles(
        1280,
        720,
        0,
        heavy.radius,
        heavy.auto_tile_pixels(cap),
        heavy.align,
    );
    assert!(tiles.len() > 4, "{} tiles at 720p", tiles.len());

    let c = Clip::new(192, 108, 1);
    let whole = c.ours(X4PLUS, 4, 0);
    let p = c.per_frame_psnr(&c.ours(X4PLUS, 4, 64), &whole, 4);
    eprintln!("x4plus tile 64 vs untiled PSNR: {p:?}");
    assert!(p.iter().all(|v| *v >= 50.0), "{p:?}");
}

/// Every Real-CUGAN variant in the manifest: (model, scale).
fn cugan_variants() -> Vec<(String, u32)> {
    bv_engine::model::Manifest::builtin()
        .models
        .iter()
        .filter(|m| m.name.starts_with("realcugan-"))
        .flat_map(|m| m.variants.iter().map(|v| (m.name.clone(), v.scale)))
        .collect()
}

#[test]
fn realcugan_matches_ncnn_fp32_at_50_db() {
    // Its convolutions do not pad; realcugan-ncnn-vulkan (the reference
    // tool) extends the image by repeating edge pixels, 18 px for x2, 14 for
    // x3, 19 for x4, and so does the reference script here (--pad).
    let c = Clip::new(128, 72, 1);
    let variants = cugan_variants();
    assert_eq!(
        variants.len(),
        17,
        "se: 5 strengths, pro: 3, over their scales"
    );
    for (model, scale) in variants {
        let (family, level) = model["realcugan-".len()..].split_once('-').unwrap();
        let file = format!("realcugan-{family}-up{scale}x-{level}");
        let pad = match scale {
            2 => "18",
            3 => "14",
            _ => "19",
        };
        let reference = c.reference_with(
            &format!("{file}.param"),
            &format!("{file}.bin"),
            &["--input", "in0", "--output", "out0", "--pad", pad],
        );
        let p = c.per_frame_psnr(&c.ours(&model, scale, 0), &reference, scale as usize);
        eprintln!("{model} x{scale} PSNR vs ncnn fp32: {p:?}");
        assert!(p.iter().all(|v| *v >= 50.0), "{model} x{scale}: {p:?}");
    }
}

#[test]
fn realcugan_tiles_equal_the_whole_frame_at_50_db() {
    // Tiles start in the phase of the network's strides, and its
    // squeeze-and-excitation blocks get the whole frame's means (computed
    // tile by tile first); each tiled frame must equal the untiled one.
    let c = Clip::new(192, 108, 1);
    for (model, scale) in [
        ("realcugan-se-denoise3x", 2),
        ("realcugan-se-no-denoise", 4),
    ] {
        let whole = c.ours(model, scale, 0);
        for tile in [64, 100] {
            let p = c.per_frame_psnr(&c.ours(model, scale, tile), &whole, scale as usize);
            eprintln!("{model} x{scale} tile {tile} vs untiled PSNR: {p:?}");
            assert!(p.iter().all(|v| *v >= 50.0), "{model} tile {tile}: {p:?}");
        }
    }
}

#[test]
fn a_plain_bicubic_upscale_does_not_pass_for_the_model() {
    // Guards the guard: the 50 dB bar must be able to fail.
    let c = Clip::new(W, H, FRAMES);
    let f = &c.rgb;
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
    let p = c.per_frame_psnr(&bicubic, &anime_reference(&c, 4), 4);
    assert!(p.iter().all(|v| *v < 40.0), "{p:?}");
}
