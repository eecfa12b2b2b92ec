//! Test fixture, not an example: an eviction policy that panics with the
//! message given as its CONFIG, so the tests can check that a guest panic's
//! message reaches the host's log and the policy's info.

#![cfg_attr(target_arch = "wasm32", no_std)]

use ferrite_guest_sdk::*;

pub struct Panicky {
    message: String,
}

impl Policy for Panicky {
    fn init(config: &[u8]) -> Result<Self, String> {
        Ok(Panicky { message: String::from_utf8_lossy(config).into_owned() })
    }
}

impl EvictionPolicy for Panicky {
    fn choose(&mut self, _input: &EvictInput) -> Vec<u32> {
        panic!("{}", self.message)
    }
}

export_policy!(Panicky: EvictionPolicy);
