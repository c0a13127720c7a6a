//! The private working directory of one run: created empty with mode 0700, owned by the
//! run's user id, holding the harness and its job, removed afterwards whatever the program
//! left in it.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::SandboxError;

static NEXT_DIR: AtomicU64 = AtomicU64::new(0);

/// A run's directory; removed on drop.
#[derive(Debug)]
pub(crate) struct WorkDir {
    path: PathBuf,
}

impl WorkDir {
    /// Creates a fresh directory under `root`, owned by `owner` when given.
    pub(crate) fn create(root: &Path, owner: Option<(u32, u32)>) -> Result<WorkDir, SandboxError> {
        let mut builder = fs::DirBuilder::new();
        builder.mode(0o700);
        for _ in 0..100 {
            let n = NEXT_DIR.fetch_add(1, Ordering::Relaxed);
            let path = root.join(format!(
                "mars2-sandbox-{}-{n}-{}",
                std::process::id(),
                crate::nonce::random_hex(4)
            ));
            match builder.create(&path) {
                Ok(()) => {
                    let dir = WorkDir { path };
                    if let Some((uid, gid)) = owner {
                        std::os::unix::fs::chown(&dir.path, Some(uid), Some(gid)).map_err(|e| {
                            SandboxError::io(format!("chown {}", dir.path.display()), e)
                        })?;
                    }
                    return Ok(dir);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(SandboxError::io(format!("create {}", path.display()), e)),
            }
        }
        Err(SandboxError::io(
            format!("create a directory under {}", root.display()),
            std::io::Error::from(std::io::ErrorKind::AlreadyExists),
        ))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Writes a file readable by the program (mode 0644, owned by the runner).
    pub(crate) fn write(&self, name: &str, contents: &[u8]) -> Result<PathBuf, SandboxError> {
        let path = self.path.join(name);
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&path)
            .map_err(|e| SandboxError::io(format!("create {}", path.display()), e))?;
        file.write_all(contents)
            .map_err(|e| SandboxError::io(format!("write {}", path.display()), e))?;
        Ok(path)
    }

    /// Removes the directory and everything in it (symbolic links are removed, not
    /// followed).
    pub(crate) fn remove(mut self) -> Result<(), SandboxError> {
        let path = std::mem::take(&mut self.path);
        remove_tree(&path)
    }
}

fn remove_tree(path: &Path) -> Result<(), SandboxError> {
    // The program may have left directories without write or search permission.
    make_traversable(path);
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(SandboxError::Cleanup(format!("{}: {e}", path.display()))),
    }
}

fn make_traversable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = fs::symlink_metadata(path) else {
        return;
    };
    if !meta.is_dir() {
        return;
    }
    let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o700));
    if let Ok(entries) = fs::read_dir(path) {
        for entry in entries.flatten() {
            make_traversable(&entry.path());
        }
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = remove_tree(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_private_and_removed_with_contents() {
        let dir = WorkDir::create(&std::env::temp_dir(), None).unwrap();
        let path = dir.path().to_path_buf();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o700
        );
        dir.write("a.txt", b"x").unwrap();
        fs::create_dir(path.join("sub")).unwrap();
        fs::set_permissions(path.join("sub"), fs::Permissions::from_mode(0o000)).unwrap();
        dir.remove().unwrap();
        assert!(!path.exists());
    }
}
