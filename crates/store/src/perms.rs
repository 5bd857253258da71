//! Owner-only files and folders.
//!
//! Everything kiban writes into a workspace is personal data or derived from it, so every
//! folder it creates is `0700` and every file `0600` on Unix, whatever the process umask:
//! a library user that never sets a umask gets the same modes as the `kiban` binary (which
//! also sets umask 077). [`tighten_dir`] narrows a folder found too open (an older
//! workspace, a folder restored from a backup). Elsewhere these are plain calls.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// The mode of every folder kiban creates (Unix).
pub const DIR_MODE: u32 = 0o700;
/// The mode of every file kiban creates (Unix).
pub const FILE_MODE: u32 = 0o600;

/// `create_dir_all` with every folder it creates made `0700` (folders that exist keep their
/// mode: see [`tighten_dir`]).
pub fn create_dir_private(path: &Path) -> io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(DIR_MODE);
    }
    b.create(path)
}

/// Options that create a file `0600` (write, create, truncate).
pub fn private_file_options() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(FILE_MODE);
    }
    o
}

/// Options that create a new file `0600`, failing when it exists.
pub fn private_new_file_options() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(FILE_MODE);
    }
    o
}

/// Creates (or truncates) `path` as a `0600` file.
pub fn create_private_file(path: &Path) -> io::Result<File> {
    let f = private_file_options().open(path)?;
    // An existing file keeps its mode through open(2): narrow it too.
    tighten_file(path)?;
    Ok(f)
}

/// Narrows a file's mode to `0600` when group or others have any access; returns whether it
/// changed anything.
pub fn tighten_file(path: &Path) -> io::Result<bool> {
    tighten(path, FILE_MODE)
}

/// Narrows a folder's mode to `0700` when group or others have any access; returns whether
/// it changed anything.
pub fn tighten_dir(path: &Path) -> io::Result<bool> {
    tighten(path, DIR_MODE)
}

#[cfg(unix)]
fn tighten(path: &Path, mode: u32) -> io::Result<bool> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() {
        return Ok(false);
    }
    if meta.permissions().mode() & 0o077 == 0 {
        return Ok(false);
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(true)
}

#[cfg(not(unix))]
fn tighten(_path: &Path, _mode: u32) -> io::Result<bool> {
    Ok(false)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).expect("meta").permissions().mode() & 0o777
    }

    #[test]
    fn created_private_whatever_the_umask_and_tightened() {
        let d = tempfile::tempdir().expect("tmp");
        let nested = d.path().join("a/b/c");
        create_dir_private(&nested).expect("mkdir");
        assert_eq!(mode(&d.path().join("a")), 0o700);
        assert_eq!(mode(&nested), 0o700);
        let f = nested.join("f");
        std::fs::write(&f, b"x").expect("write");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        create_private_file(&f).expect("create");
        assert_eq!(mode(&f), 0o600);
        std::fs::set_permissions(&nested, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        assert!(tighten_dir(&nested).expect("tighten"));
        assert!(!tighten_dir(&nested).expect("tighten again"));
        assert_eq!(mode(&nested), 0o700);
    }
}
