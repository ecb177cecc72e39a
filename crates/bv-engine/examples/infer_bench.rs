//! Times one model on synthetic frames: `infer_bench MODEL_DIR WxH [threads] [frames]`.
use std::time::Instant;

use bv_engine::backend::{Backend, CpuBackend};
use bv_engine::model::ModelStore;
use bv_engine::nn::Tensor;

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let store = ModelStore::new(&a[1]);
    let (w, h) = a[2]
        .split_once('x')
        .map(|(w, h)| (w.parse().unwrap(), h.parse().unwrap()))
        .unwrap();
    let threads = a.get(3).map_or(2, |t| t.parse().unwrap());
    let frames = a.get(4).map_or(3, |t| t.parse().unwrap());
    let model = store.load("realesr-animevideov3", 4).unwrap();
    let mut be = CpuBackend::new(&model, threads).unwrap();
    let vals: Vec<f32> = (0..w * h * 3)
        .map(|i| ((i * 7919) % 256) as f32 / 255.0)
        .collect();
    for i in 0..=frames {
        let t = Instant::now();
        let out = be.infer(Tensor::from_hwc(h, w, 3, &vals)).unwrap();
        println!(
            "{} frame {i}: {:.3} s",
            be.describe(),
            t.elapsed().as_secs_f64()
        );
        be.recycle(out);
    }
}
