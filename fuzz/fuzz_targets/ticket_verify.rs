//! Any ticket a client presents: verification gives claims or a refusal, never a panic; claims
//! come back only from a ticket that this signer made (re-signing them verifies the same).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tickcast_schemas::token::TokenSigner;

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else { return };
    let signer = TokenSigner::new(b"the fuzzer's secret, 32 bytes..")
        .with_previous(b"the fuzzer's previous secret....", 1_000);
    if let Ok(claims) = signer.verify(token, 0) {
        assert_eq!(signer.verify(&signer.sign(&claims), 0), Ok(claims));
    }
});
