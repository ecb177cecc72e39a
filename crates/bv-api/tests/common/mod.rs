//! What the API's test files share: the offers their services run with.

use bv_service::offers::{ModelOffer, Offers, PresetOffer};

/// Two models (one with every scale, one x4 only) and one preset.
pub fn offers() -> Offers {
    let model = |name: &str, scales: Vec<u32>| ModelOffer {
        name: name.into(),
        title: name.into(),
        note: String::new(),
        scales,
    };
    Offers {
        models: vec![
            model("realesr-animevideov3", vec![2, 3, 4]),
            model("realesrgan-x4plus", vec![4]),
        ],
        presets: vec![PresetOffer {
            name: "anime".into(),
            title: "Anime".into(),
            note: String::new(),
            model: "realesr-animevideov3".into(),
            scale: 4,
            codec: bv_job::Codec::Hevc,
            crf: None,
        }],
    }
}
