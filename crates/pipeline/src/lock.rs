//! The workspace lock: one writer, or any number of readers.
//!
//! `WORKSPACE/workspace.lock` is locked with the operating system's advisory file lock
//! (`flock` on Unix, `LockFileEx` on Windows, through std's `File::lock` family): released
//! by the kernel when the process ends however it ends, so a crashed ingest never leaves a
//! stale lock behind.
//!
//! * A **writer** ([`Access::Write`]: every command that changes state, and every open that
//!   has maintenance to do) holds the lock exclusively from `Workspace::open` until the
//!   `Workspace` is dropped. Only a writer migrates the database, rolls back the chunks a
//!   crash left unfinished, finishes pending SS-MIX2 retractions and seals legacy file names
//!   — so recovery never runs while another writer is alive, and never destroys the chunk an
//!   ingest is writing.
//! * A **reader** ([`Access::Read`]: `kiban stats`, `kiban files show`, `kiban records list`,
//!   `kiban handler list|history`, `kiban handler notice-version list`, `kiban optout
//!   status`, `kiban audit verify`) holds it shared (`files show` and `records list` still
//!   append their audit event: the audit log has its own lock). It waits while a writer runs (an ingest's
//!   chunk being written is never seen half-done: lake parts are renamed into place before
//!   the chunk's transaction commits, so a reader running beside a writer could count parts
//!   of an uncommitted chunk).
//!   A reader that finds maintenance to do (a writer crashed) lets go, takes the lock
//!   exclusively, does it, and starts over as a reader.
//!
//! A process that cannot get the lock polls until a timeout (`[workspace]
//! lock_timeout_secs` in `kiban.toml`, or `KIBAN_LOCK_TIMEOUT` seconds; 0 = do not wait) and
//! then fails with [`PipelineError::Busy`]. The caller is told once that it waits (the
//! binary prints it; this crate never prints).

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::PipelineError;

/// The lock file's name in the workspace folder.
pub const LOCK_FILE: &str = "workspace.lock";

/// The environment variable that overrides `[workspace] lock_timeout_secs`.
pub const TIMEOUT_ENV: &str = "KIBAN_LOCK_TIMEOUT";

/// How long to wait for the lock by default.
pub const DEFAULT_TIMEOUT_SECS: u64 = 300;

/// What a command does with the workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reads only: waits for writers, runs beside other readers.
    Read,
    /// Changes state: alone.
    Write,
}

/// Told once when the lock is not free at once and the caller starts waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockWait {
    /// The access being waited for.
    pub access: Access,
    /// How long the caller will wait at most.
    pub timeout: Duration,
}

/// A held workspace lock (released on drop, or by the kernel when the process ends).
#[derive(Debug)]
pub struct WorkspaceLock {
    file: File,
    path: PathBuf,
    held: Option<Access>,
}

const POLL: Duration = Duration::from_millis(50);

impl WorkspaceLock {
    /// Opens (creating it if needed) the lock file of the workspace in `dir`, unlocked.
    pub(crate) fn open(dir: &Path) -> Result<WorkspaceLock, PipelineError> {
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| PipelineError::io(&path, e))?;
        Ok(WorkspaceLock {
            file,
            path,
            held: None,
        })
    }

    /// The access held now, if any.
    pub fn held(&self) -> Option<Access> {
        self.held
    }

    /// Takes the lock for `access`, waiting until `deadline` (polling); `on_wait` is called
    /// once if the lock is not free at once.
    pub(crate) async fn acquire(
        &mut self,
        access: Access,
        timeout: Duration,
        deadline: Instant,
        on_wait: &mut (dyn FnMut(LockWait) + Send),
    ) -> Result<(), PipelineError> {
        self.release()?;
        let mut told = false;
        loop {
            let attempt = match access {
                Access::Read => self.file.try_lock_shared(),
                Access::Write => self.file.try_lock(),
            };
            match attempt {
                Ok(()) => {
                    self.held = Some(access);
                    return Ok(());
                }
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Error(e)) => return Err(PipelineError::io(&self.path, e)),
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(PipelineError::Busy {
                    timeout_secs: timeout.as_secs(),
                });
            }
            if !told {
                told = true;
                on_wait(LockWait { access, timeout });
            }
            tokio::time::sleep(POLL.min(deadline - now)).await;
        }
    }

    /// Lets go of the lock (a no-op when none is held).
    pub(crate) fn release(&mut self) -> Result<(), PipelineError> {
        if self.held.take().is_some() {
            self.file
                .unlock()
                .map_err(|e| PipelineError::io(&self.path, e))?;
        }
        Ok(())
    }
}

/// Takes the lock of the workspace in `dir` without opening it (for a reader of files only,
/// e.g. `kiban audit verify`): the timeout is the workspace's (`kiban.toml`, or the default
/// when it cannot be read). Held until dropped.
pub async fn lock_workspace(
    dir: &Path,
    access: Access,
    on_wait: &mut (dyn FnMut(LockWait) + Send),
) -> Result<WorkspaceLock, PipelineError> {
    let configured = std::fs::read_to_string(dir.join("kiban.toml"))
        .ok()
        .and_then(|t| crate::config::Config::parse(&t).ok())
        .map_or(DEFAULT_TIMEOUT_SECS, |c| c.workspace.lock_timeout_secs);
    let timeout = timeout(configured);
    let mut lock = WorkspaceLock::open(dir)?;
    lock.acquire(access, timeout, Instant::now() + timeout, on_wait)
        .await?;
    Ok(lock)
}

/// The lock timeout: `KIBAN_LOCK_TIMEOUT` (seconds) when set and valid, else `configured`.
pub(crate) fn timeout(configured: u64) -> Duration {
    let secs = std::env::var(TIMEOUT_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(configured);
    Duration::from_secs(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn never(_: LockWait) {
        panic!("should not wait");
    }

    #[tokio::test]
    async fn readers_share_and_writers_exclude() {
        let dir = tempfile::tempdir().expect("tmp");
        let t = Duration::from_millis(200);
        let soon = || Instant::now() + Duration::from_millis(200);
        let mut r1 = WorkspaceLock::open(dir.path()).expect("open");
        let mut r2 = WorkspaceLock::open(dir.path()).expect("open");
        let mut w = WorkspaceLock::open(dir.path()).expect("open");
        r1.acquire(Access::Read, t, soon(), &mut never)
            .await
            .expect("r1");
        r2.acquire(Access::Read, t, soon(), &mut never)
            .await
            .expect("r2");
        let mut waited = Vec::new();
        let busy = w
            .acquire(Access::Write, t, soon(), &mut |x| waited.push(x))
            .await;
        assert!(matches!(busy, Err(PipelineError::Busy { .. })), "{busy:?}");
        assert_eq!(waited.len(), 1, "told once");
        r1.release().expect("release");
        drop(r2);
        w.acquire(Access::Write, t, soon(), &mut never)
            .await
            .expect("free now");
        let mut r3 = WorkspaceLock::open(dir.path()).expect("open");
        let busy = r3
            .acquire(Access::Read, t, Instant::now(), &mut |_| {})
            .await;
        assert!(matches!(busy, Err(PipelineError::Busy { .. })));
        drop(w);
        r3.acquire(Access::Read, t, soon(), &mut never)
            .await
            .expect("r3");
    }
}
