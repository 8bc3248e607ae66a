//! The cache's layout, as keys relative to its root: the same keys name an
//! object in the local cache (`.ferry/cache/<key>`) and on a remote
//! (`<remote prefix>/<key>`), so a remote is a copy of the cache's files.

use ferry_core::Digest;

/// `objects/ab/cdef…`: the file whose content has digest `d`.
pub fn object_key(d: &Digest) -> String {
    let hex = d.to_hex();
    format!("objects/{}/{}", &hex[..2], &hex[2..])
}

/// `objects/ab/cdef….dir`: the manifest (JSON) of the folder with digest `d`.
pub fn manifest_key(d: &Digest) -> String {
    let hex = d.to_hex();
    format!("objects/{}/{}.dir", &hex[..2], &hex[2..])
}

/// `runs/ab/cdef…`: what the stage with this fingerprint produced (JSON).
pub fn run_key(fingerprint: &Digest) -> String {
    let hex = fingerprint.to_hex();
    format!("runs/{}/{}", &hex[..2], &hex[2..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_fan_out_by_the_first_two_hex_digits() {
        let d = Digest::of(b"x");
        let hex = d.to_hex();
        assert_eq!(
            object_key(&d),
            format!("objects/{}/{}", &hex[..2], &hex[2..])
        );
        assert_eq!(manifest_key(&d), format!("{}.dir", object_key(&d)));
        assert!(run_key(&d).starts_with(&format!("runs/{}/", &hex[..2])));
    }
}
