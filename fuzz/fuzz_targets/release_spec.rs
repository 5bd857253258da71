//! `kiban_release::Spec::parse`: release specs (TOML) written by users and shipped as profiles.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = kiban_release::Spec::parse(&text);
});
