//! Password scrambles of the authentication plugins this client speaks, and what to send for
//! each plugin. The password itself goes over the wire only inside TLS.

use sha1::Sha1;
use sha2::{Digest, Sha256};

/// `mysql_native_password`: `SHA1(pw) XOR SHA1(nonce + SHA1(SHA1(pw)))`; empty for no password.
pub fn native_password(password: &[u8], nonce: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let stage1 = Sha1::digest(password);
    let stage2 = Sha1::digest(stage1);
    let mut h = Sha1::new();
    h.update(nonce);
    h.update(stage2);
    let mask = h.finalize();
    stage1.iter().zip(mask.iter()).map(|(a, b)| a ^ b).collect()
}

/// `caching_sha2_password`: `SHA256(pw) XOR SHA256(SHA256(SHA256(pw)) + nonce)`.
pub fn caching_sha2_password(password: &[u8], nonce: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let stage1 = Sha256::digest(password);
    let stage2 = Sha256::digest(stage1);
    let mut h = Sha256::new();
    h.update(stage2);
    h.update(nonce);
    let mask = h.finalize();
    stage1.iter().zip(mask.iter()).map(|(a, b)| a ^ b).collect()
}

/// The password as the plugins that need it in clear expect it: NUL-terminated.
pub fn clear_password(password: &[u8]) -> Vec<u8> {
    let mut v = password.to_vec();
    v.push(0);
    v
}

/// Why a login cannot go on without TLS; names what the user can change.
pub fn needs_tls(plugin: &str) -> String {
    format!(
        "the server asks for the password in clear ({plugin}), which this client sends only over TLS: \
         set ssl-mode=require in the URL, connect through Hyperdrive, or give the user \
         mysql_native_password (or a cached caching_sha2_password login)"
    )
}

/// The first answer to `plugin`'s request with `nonce`.
pub fn first_response(plugin: &str, password: &[u8], nonce: &[u8], tls: bool) -> Result<Vec<u8>, String> {
    match plugin {
        "mysql_native_password" | "" => Ok(native_password(password, nonce)),
        "caching_sha2_password" => Ok(caching_sha2_password(password, nonce)),
        "sha256_password" | "mysql_clear_password" if tls => Ok(clear_password(password)),
        "sha256_password" if password.is_empty() => Ok(vec![0]),
        "sha256_password" | "mysql_clear_password" => Err(needs_tls(plugin)),
        other => Err(format!(
            "the server asks for the authentication plugin {other:?}, which this client does not speak \
             (it speaks mysql_native_password, caching_sha2_password, and over TLS sha256_password and mysql_clear_password)"
        )),
    }
}

/// caching_sha2_password's answer after the scramble: `3` means the server had the password
/// cached (an OK follows), `4` that it wants the password itself (the full path).
pub const FAST_AUTH_OK: u8 = 3;
pub const FULL_AUTH: u8 = 4;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::mysql::codec::from_hex;

    // Vectors from go-sql-driver/mysql's auth_test.go (an independent implementation), and
    // cross-checked with Python's hashlib.
    #[test]
    fn native_password_known_vectors() {
        let nonce = [70, 114, 92, 94, 1, 38, 11, 116, 63, 114, 23, 101, 126, 103, 26, 95, 81, 17, 24, 21];
        assert_eq!(
            native_password(b"secret", &nonce),
            vec![53, 177, 140, 159, 251, 189, 127, 53, 109, 252, 172, 50, 211, 192, 240, 164, 26, 48, 207, 45]
        );
        assert_eq!(native_password(b"", &nonce), Vec::<u8>::new());
        // SHA1(SHA1(pw)) is what the server stores: MariaDB's PASSWORD('secret') is
        // *14E65567ABDB5135D0CFD9A70B3032C179A49EE7; unmasking the scramble must give SHA1(pw),
        // whose SHA1 is that hash.
        let scramble = native_password(b"secret", &nonce);
        let stored = from_hex("14E65567ABDB5135D0CFD9A70B3032C179A49EE7");
        let mut h = Sha1::new();
        h.update(nonce);
        h.update(&stored);
        let stage1: Vec<u8> = scramble.iter().zip(h.finalize().iter()).map(|(a, b)| a ^ b).collect();
        assert_eq!(Sha1::digest(&stage1).to_vec(), stored);
    }

    #[test]
    fn caching_sha2_known_vectors() {
        let nonce = [90, 105, 74, 126, 30, 48, 37, 56, 3, 23, 115, 127, 69, 22, 41, 84, 32, 123, 43, 118];
        assert_eq!(
            caching_sha2_password(b"secret", &nonce),
            vec![
                102, 32, 5, 35, 143, 161, 140, 241, 171, 232, 56, 139, 43, 14, 107, 196, 249, 170, 147, 60, 220, 204, 120, 178, 214, 15,
                184, 150, 26, 61, 57, 235
            ]
        );
        let nonce = [10, 47, 74, 111, 75, 73, 34, 48, 88, 76, 114, 74, 37, 13, 3, 80, 82, 2, 23, 21];
        assert_eq!(caching_sha2_password(b"secret", &nonce), from_hex("f490e76f66d9d86665ce54d98c78d0acfe2fb0b08b423da807144873d30b312c"));
        assert_eq!(caching_sha2_password(b"secret2", &nonce), from_hex("abc3934a012cf342e876071c8ee202de51785b430258a7a0138bc79c4d800bc6"));
        assert!(caching_sha2_password(b"", &nonce).is_empty());
    }

    #[test]
    fn plugins_that_need_the_password_need_tls() {
        let e = first_response("sha256_password", b"pw", &[0; 20], false).unwrap_err();
        assert!(e.contains("ssl-mode=require") && e.contains("mysql_native_password"), "{e}");
        assert_eq!(first_response("mysql_clear_password", b"pw", &[0; 20], true).unwrap(), b"pw\0");
        let e = first_response("client_ed25519", b"pw", &[0; 20], true).unwrap_err();
        assert!(e.contains("client_ed25519"), "{e}");
        assert_eq!(first_response("mysql_native_password", b"secret", &[1; 20], false).unwrap().len(), 20);
    }
}
