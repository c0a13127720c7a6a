//! How a failed command's error is printed: its chain of causes joined by ": ", each cause
//! once. Library errors name their file and quote their cause in their own message (so that
//! they read whole on their own), which `{:#}` would print a second time.

/// The error and its causes, outermost first, leaving out a cause whose text the message
/// already holds.
pub fn error_text(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error that names its file and quotes its cause, as the libraries' errors do.
    #[derive(Debug)]
    struct FileError {
        path: String,
        source: std::io::Error,
    }

    impl std::fmt::Display for FileError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{}: {}", self.path, self.source)
        }
    }

    impl std::error::Error for FileError {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.source)
        }
    }

    #[test]
    fn a_cause_quoted_by_its_error_is_printed_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let error = anyhow::Error::new(FileError {
            path: "/data/trees.jsonl".into(),
            source: io,
        })
        .context("reading the trees");
        assert_eq!(
            error_text(&error),
            "reading the trees: /data/trees.jsonl: no such file"
        );
        let plain = anyhow::anyhow!("inner").context("outer");
        assert_eq!(error_text(&plain), "outer: inner");
    }
}
