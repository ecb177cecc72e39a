//! Fuzzes configuration loading: a hostile `config.toml` and hostile `BV_*`
//! variables give a validated configuration or an error, never a panic. The
//! input is the file text, then lines `NAME=value` after a NUL.
#![no_main]

#[path = "../../crates/bv/src/config.rs"]
#[allow(dead_code)]
mod config;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (file, vars) = text.split_once('\0').unwrap_or((&text, ""));
    let env: Vec<(String, String)> = vars
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (format!("BV_{k}"), v.to_string()))
        .collect();
    if let Ok(cfg) = config::Config::resolve(Some((file, "fuzz.toml")), &env) {
        // Whatever loads also prints and loads again as itself.
        let shown = cfg.redacted_toml().expect("a loaded configuration prints");
        // (Redacted secrets print as a placeholder, which need not load back.)
        if cfg.vault.root_key.is_none()
            && cfg.vault.s3_secret_access_key.is_empty()
            && !cfg.catalog.url.contains('@')
        {
            let again = config::Config::resolve(Some((&shown, "shown.toml")), &[])
                .expect("a printed configuration loads");
            // Compared as printed: a NaN setting is not equal to itself.
            assert_eq!(again.redacted_toml().unwrap(), shown);
        }
    }
});
