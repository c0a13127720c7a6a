//! Where a training run keeps its checkpoints, and how a round's set of them is committed.
//!
//! Every agent's checkpoint of round `r` is written to `checkpoints/round-<r>/<agent>/`. Once
//! all of them are complete, the symbolic link `checkpoints/latest` is switched to that round
//! in one rename, and older rounds are removed. A run killed at any moment (in the middle of
//! writing a checkpoint too) resumes from the round `latest` names, whose files are whole and
//! of one round for every agent.

use std::path::{Path, PathBuf};

use super::error::{TrainError, TrainResult};

/// The checkpoints of one run directory.
pub struct RunCheckpoints {
    root: PathBuf,
}

const LATEST: &str = "latest";
const ROUND_PREFIX: &str = "round-";

impl RunCheckpoints {
    pub fn new(run_dir: &Path) -> Self {
        RunCheckpoints {
            root: run_dir.join("checkpoints"),
        }
    }

    /// Agent `agent`'s checkpoint of round `round`.
    pub fn agent_dir(&self, round: usize, agent: &str) -> PathBuf {
        self.round_dir(round).join(agent)
    }

    /// Agent `agent`'s checkpoint of the last committed round (through the `latest` link).
    pub fn latest_agent_dir(&self, agent: &str) -> PathBuf {
        self.root.join(LATEST).join(agent)
    }

    fn round_dir(&self, round: usize) -> PathBuf {
        self.root.join(format!("{ROUND_PREFIX}{round}"))
    }

    /// The last committed round, if any.
    pub fn latest(&self) -> TrainResult<Option<usize>> {
        let link = self.root.join(LATEST);
        let target = match std::fs::read_link(&link) {
            Ok(target) => target,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(TrainError::io(&link, e)),
        };
        let round = target
            .to_str()
            .and_then(|t| t.strip_prefix(ROUND_PREFIX))
            .and_then(|r| r.parse::<usize>().ok());
        match round {
            Some(round) if self.round_dir(round).is_dir() => Ok(Some(round)),
            _ => Err(TrainError::Resume {
                message: format!(
                    "points to {}, which is not a round of this run",
                    target.display()
                ),
                path: link,
            }),
        }
    }

    /// Makes round `round` the one to resume from, then removes every other round.
    pub fn commit(&self, round: usize) -> TrainResult<()> {
        let link = self.root.join(LATEST);
        let fresh = self.root.join(".latest.new");
        let _ = std::fs::remove_file(&fresh);
        std::os::unix::fs::symlink(format!("{ROUND_PREFIX}{round}"), &fresh)
            .map_err(|e| TrainError::io(&fresh, e))?;
        sync_dir(&self.round_dir(round))?;
        std::fs::rename(&fresh, &link).map_err(|e| TrainError::io(&link, e))?;
        sync_dir(&self.root)?;
        self.remove_rounds_except(Some(round))
    }

    /// Removes every checkpoint (a fresh run in a directory that held another).
    pub fn clear(&self) -> TrainResult<()> {
        let _ = std::fs::remove_file(self.root.join(LATEST));
        self.remove_rounds_except(None)
    }

    fn remove_rounds_except(&self, keep: Option<usize>) -> TrainResult<()> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(TrainError::io(&self.root, e)),
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let round = name
                .strip_prefix(ROUND_PREFIX)
                .and_then(|r| r.parse::<usize>().ok());
            if round.is_some() && round != keep {
                std::fs::remove_dir_all(entry.path())
                    .map_err(|e| TrainError::io(&entry.path(), e))?;
            }
        }
        Ok(())
    }
}

/// Flushes a directory's entries to disk (a rename or a new file in it survives a crash).
fn sync_dir(dir: &Path) -> TrainResult<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| TrainError::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_round_is_the_last_committed_one() {
        let dir = tempfile::tempdir().unwrap();
        let checkpoints = RunCheckpoints::new(dir.path());
        assert_eq!(checkpoints.latest().unwrap(), None);
        for round in 0..3 {
            let agent = checkpoints.agent_dir(round, "a");
            std::fs::create_dir_all(&agent).unwrap();
            std::fs::write(agent.join("state.json"), "{}").unwrap();
            if round < 2 {
                checkpoints.commit(round).unwrap();
            }
        }
        // Round 2 was written but never committed (a kill while writing it).
        assert_eq!(checkpoints.latest().unwrap(), Some(1));
        assert!(
            !checkpoints.agent_dir(0, "a").exists(),
            "older rounds are removed"
        );
        checkpoints.commit(2).unwrap();
        assert_eq!(checkpoints.latest().unwrap(), Some(2));
        assert!(!checkpoints.agent_dir(1, "a").exists());
        checkpoints.clear().unwrap();
        assert_eq!(checkpoints.latest().unwrap(), None);
        assert!(!checkpoints.agent_dir(2, "a").exists());
    }

    #[test]
    fn a_link_to_nowhere_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let checkpoints = RunCheckpoints::new(dir.path());
        std::fs::create_dir_all(dir.path().join("checkpoints")).unwrap();
        std::os::unix::fs::symlink("round-9", dir.path().join("checkpoints/latest")).unwrap();
        let err = checkpoints.latest().unwrap_err().to_string();
        assert!(err.contains("latest") && err.contains("round-9"), "{err}");
    }
}
