//! Workspace secrets: 256-bit keys kept as hex files readable only by the owner.
//!
//! * the **master key** wraps each person's vault data key;
//! * the **index key** turns a handler's patient ID into the control plane's `patient_key`
//!   (HMAC), so that no plaintext patient ID is stored outside the vault.

use std::io::Write;
use std::path::Path;

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("key file {path} is not 64 hex digits")]
    Malformed { path: String },
}

/// A 256-bit secret. Never printed: `Debug` shows only that it is a key.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct SecretKey([u8; 32]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl SecretKey {
    /// A fresh random key from the operating system's CSPRNG.
    pub fn generate() -> SecretKey {
        let mut k = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut k);
        SecretKey(k)
    }

    pub fn from_bytes(bytes: [u8; 32]) -> SecretKey {
        SecretKey(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Loads the key at `path`, or creates it (mode 0600 on Unix) when it does not exist.
    pub fn load_or_create(path: &Path) -> Result<SecretKey, KeyError> {
        if path.exists() {
            return SecretKey::load(path);
        }
        let key = SecretKey::generate();
        let io = |source| KeyError::Io {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(path).map_err(io)?;
        let mut text = hex::encode(key.0);
        f.write_all(text.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
        text.zeroize();
        Ok(key)
    }

    pub fn load(path: &Path) -> Result<SecretKey, KeyError> {
        let mut text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let mut k = [0u8; 32];
        let ok = hex::decode_to_slice(text.trim(), &mut k).is_ok();
        text.zeroize();
        if !ok {
            return Err(KeyError::Malformed {
                path: path.display().to_string(),
            });
        }
        Ok(SecretKey(k))
    }

    /// HMAC-SHA256 over `parts`, each length-prefixed so that ("ab","c") ≠ ("a","bc").
    pub fn hmac(&self, parts: &[&[u8]]) -> [u8; 32] {
        // HMAC accepts keys of any length; a 32-byte key cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        for p in parts {
            mac.update(&(p.len() as u64).to_be_bytes());
            mac.update(p);
        }
        mac.finalize().into_bytes().into()
    }

    /// Derives a sub-key for `purpose` (HMAC-based, one-way).
    pub fn derive(&self, purpose: &str) -> SecretKey {
        SecretKey(self.hmac(&[b"kiban-derive", purpose.as_bytes()]))
    }
}

/// The control plane's key for one handler's patient: hex HMAC of (handler code, patient ID)
/// under the workspace index key. Stable for the workspace, meaningless without the key.
pub fn patient_key(index_key: &SecretKey, handler_code: &str, patient_id: &str) -> String {
    hex::encode(index_key.hmac(&[handler_code.trim().as_bytes(), patient_id.trim().as_bytes()]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_parts_are_unambiguous() {
        let k = SecretKey::from_bytes([7; 32]);
        assert_ne!(k.hmac(&[b"ab", b"c"]), k.hmac(&[b"a", b"bc"]));
    }

    #[test]
    fn patient_key_depends_on_handler_and_key() {
        let k1 = SecretKey::from_bytes([1; 32]);
        let k2 = SecretKey::from_bytes([2; 32]);
        assert_eq!(
            patient_key(&k1, "H1", "001"),
            patient_key(&k1, "H1", " 001 ")
        );
        assert_ne!(patient_key(&k1, "H1", "001"), patient_key(&k1, "H2", "001"));
        assert_ne!(patient_key(&k1, "H1", "001"), patient_key(&k2, "H1", "001"));
    }

    #[test]
    fn key_file_round_trips_and_rejects_garbage() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("keys/master.key");
        let a = SecretKey::load_or_create(&p).expect("create");
        let b = SecretKey::load_or_create(&p).expect("load");
        assert_eq!(a, b);
        std::fs::write(&p, "nothex").expect("write");
        assert!(matches!(
            SecretKey::load(&p),
            Err(KeyError::Malformed { .. })
        ));
        assert_eq!(format!("{a:?}"), "SecretKey(..)");
    }
}
