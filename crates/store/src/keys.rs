//! Workspace secrets: 256-bit keys kept as hex files readable only by the owner.
//!
//! * the **master key** seals source file names and release keys, and wrapped the vault's
//!   data keys before key epochs (see [`crate::vault`]);
//! * the **epoch key** (`keys/vault-epoch-N.key`) wraps each person's vault data key; a
//!   deletion replaces it (the old file is overwritten and unlinked), so that a database
//!   backup taken before the deletion cannot be opened with the keys kept after it;
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
            crate::perms::create_dir_private(dir).map_err(io)?;
        }
        let mut f = crate::perms::private_new_file_options()
            .open(path)
            .map_err(io)?;
        let mut text = hex::encode(key.0);
        f.write_all(text.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
        text.zeroize();
        Ok(key)
    }

    /// Writes this key to `path` durably, replacing nothing that a crash could leave half
    /// written: a `0600` temporary file beside it, fsync, rename onto `path`, fsync of the
    /// folder. When this returns, the key survives a power cut.
    pub fn write_durable(&self, path: &Path) -> Result<(), KeyError> {
        let io = |source| KeyError::Io {
            path: path.display().to_string(),
            source,
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        crate::perms::create_dir_private(dir).map_err(io)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "key".into());
        let tmp = dir.join(format!(".{name}.tmp"));
        let result = (|| {
            let mut f = crate::perms::create_private_file(&tmp)?;
            let mut text = hex::encode(self.0);
            let w = f.write_all(text.as_bytes());
            text.zeroize();
            w?;
            f.sync_all()?;
            drop(f);
            std::fs::rename(&tmp, path)?;
            sync_dir(dir)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map_err(io)
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

/// Destroys a key file: overwrites its bytes with zeros, syncs, unlinks it and syncs the
/// folder (on a copy-on-write or journalling file system the old blocks may survive in the
/// device: the backup policy in ARCHITECTURE.md says what else must go). Returns whether
/// there was a file.
pub fn destroy_key_file(path: &Path) -> Result<bool, KeyError> {
    let io = |source| KeyError::Io {
        path: path.display().to_string(),
        source,
    };
    let len = match std::fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io(e)),
    };
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(io)?;
        let zeros = vec![0u8; usize::try_from(len).unwrap_or(0).min(1 << 20)];
        f.write_all(&zeros).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    std::fs::remove_file(path).map_err(io)?;
    sync_dir(path.parent().unwrap_or(Path::new("."))).map_err(io)?;
    Ok(true)
}

/// Writes a folder's entries (a rename, an unlink) to disk.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
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

    #[test]
    fn durable_write_then_destroy() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("keys/vault-epoch-1.key");
        let k = SecretKey::generate();
        k.write_durable(&p).expect("write");
        assert_eq!(SecretKey::load(&p).expect("load"), k);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let m = std::fs::metadata(&p).expect("meta").permissions().mode();
            assert_eq!(m & 0o777, 0o600);
        }
        // No temporary file is left beside it.
        let names: Vec<_> = std::fs::read_dir(p.parent().expect("dir"))
            .expect("ls")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names.len(), 1);
        assert!(destroy_key_file(&p).expect("destroy"));
        assert!(!p.exists());
        assert!(!destroy_key_file(&p).expect("destroy again"));
    }
}
