//! What a remote is known to hold, kept on this machine
//! (`.ferry/remotes/<name>.known`), so that a push with nothing new to send
//! makes no request per object. Only ever a subset of the truth: a key is
//! added after the remote acknowledged it (an upload, a listing, a HEAD, a
//! download) and removed when ferry deletes it; `--verify` starts from
//! nothing. The first line names the remote's URL: another URL, another set.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub(crate) struct Known {
    file: PathBuf,
    url: String,
    keys: HashSet<String>,
    changed: bool,
}

impl Known {
    /// The record at `file` for the remote at `url` (empty when absent,
    /// unreadable or for another URL: it is only a shortcut).
    pub(crate) fn load(file: &Path, url: &str) -> Self {
        let mut keys = HashSet::new();
        if let Ok(text) = std::fs::read_to_string(file) {
            let mut lines = text.lines();
            if lines.next() == Some(&format!("url {url}")) {
                keys.extend(lines.filter(|l| !l.is_empty()).map(str::to_owned));
            }
        }
        Self {
            file: file.to_owned(),
            url: url.to_owned(),
            keys,
            changed: false,
        }
    }

    pub(crate) fn has(&self, key: &str) -> bool {
        self.keys.contains(key)
    }

    pub(crate) fn add(&mut self, key: String) {
        self.changed |= self.keys.insert(key);
    }

    pub(crate) fn remove(&mut self, key: &str) {
        self.changed |= self.keys.remove(key);
    }

    pub(crate) fn clear(&mut self) {
        self.changed |= !self.keys.is_empty();
        self.keys.clear();
    }

    /// Writes the record if it changed (atomically: a crash leaves the old
    /// one, which is still a subset of the truth).
    pub(crate) fn save(&mut self) -> std::io::Result<()> {
        if !self.changed {
            return Ok(());
        }
        let mut keys: Vec<&String> = self.keys.iter().collect();
        keys.sort_unstable();
        let mut text = format!("url {}\n", self.url);
        for k in keys {
            text.push_str(k);
            text.push('\n');
        }
        ferry_fs::replace(&self.file, text.as_bytes())
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        self.changed = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_kept_per_url() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let f = d.path().join("origin.known");
        let mut k = Known::load(&f, "s3://a");
        k.add("objects/aa/b".into());
        k.save().unwrap_or_else(|e| panic!("{e}"));
        assert!(Known::load(&f, "s3://a").has("objects/aa/b"));
        assert!(!Known::load(&f, "s3://other").has("objects/aa/b"));
        let mut k = Known::load(&f, "s3://a");
        k.remove("objects/aa/b");
        k.save().unwrap_or_else(|e| panic!("{e}"));
        assert!(!Known::load(&f, "s3://a").has("objects/aa/b"));
    }
}
