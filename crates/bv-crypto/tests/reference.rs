//! Cross-check against an independent implementation of the format
//! (tests/reference/sealed_object.py on pyca/cryptography, installed by
//! `make setup`): byte-identical sealing, and each side opens the other's.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use bv_crypto::SecretKey;
use bv_crypto::format::{Binding, Sealer, open_stream, seal_stream};

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn matches_the_independent_python_implementation() {
    let data = std::env::var_os("BV_DATA_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(std::env::var("HOME").unwrap())
                .join(".local/share/bettervideo")
        });
    let python = data.join("venv/bin/python");
    assert!(
        python.exists(),
        "run `make setup` first ({} missing)",
        python.display()
    );
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/reference/sealed_object.py");
    let mut child = Command::new(python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut to = child.stdin.take().unwrap();
    let mut from = BufReader::new(child.stdout.take().unwrap());
    let mut ask = |req: String| -> String {
        writeln!(to, "{req}").unwrap();
        let mut line = String::new();
        from.read_line(&mut line).unwrap();
        line
    };
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect()
    };
    for len in [0usize, 1, 4095, 4096, 4097, 8192, 12_345, 70_000] {
        let (dek, tenant, object) = (rnd(32), rnd(16), rnd(16));
        let (salt, prefix, plain) = (rnd(32), rnd(7), rnd(len));
        let key = SecretKey::from_slice(&dek).unwrap();
        let b = Binding {
            tenant: tenant.clone().try_into().unwrap(),
            object: object.clone().try_into().unwrap(),
            key_version: len as u32,
        };
        let sealer = Sealer::with_nonce_material(
            &key,
            &b,
            12,
            salt.clone().try_into().unwrap(),
            prefix.clone().try_into().unwrap(),
        )
        .unwrap();
        let mut ours = Vec::new();
        seal_stream(&plain[..], &mut ours, sealer).unwrap();
        let common = format!(
            r#""dek":"{}","tenant":"{}","object":"{}","key_version":{}"#,
            hex(&dek),
            hex(&tenant),
            hex(&object),
            len
        );
        let theirs = ask(format!(
            r#"{{"op":"seal",{common},"seg_log2":12,"salt":"{}","prefix":"{}","plain":"{}"}}"#,
            hex(&salt),
            hex(&prefix),
            hex(&plain)
        ));
        assert!(
            theirs.contains(&format!(r#""sealed": "{}""#, hex(&ours))),
            "seal differs at {len} bytes"
        );
        // They open ours (with a random salt of our own), and reject a flipped bit.
        let mut random_salted = Vec::new();
        seal_stream(
            &plain[..],
            &mut random_salted,
            Sealer::new(&key, &b, 12).unwrap(),
        )
        .unwrap();
        let opened = ask(format!(
            r#"{{"op":"open",{common},"sealed":"{}"}}"#,
            hex(&random_salted)
        ));
        assert!(
            opened.contains(&format!(r#""plain": "{}""#, hex(&plain))),
            "they could not open ours at {len}"
        );
        let mut bad = random_salted.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(
            ask(format!(
                r#"{{"op":"open",{common},"sealed":"{}"}}"#,
                hex(&bad)
            ))
            .contains("error")
        );
        // We open theirs.
        let sealed_theirs = unhex(theirs.split('"').nth(3).unwrap());
        let mut back = Vec::new();
        open_stream(&sealed_theirs[..], &mut back, &key, &b).unwrap();
        assert_eq!(back, plain);
    }
    drop(to);
    child.wait().unwrap();
}
