//! How a restore puts a cached file into the work tree.

/// How files come out of the cache (ferry.yaml `cache.link`, or `--link`).
///
/// Invariant: whatever the mode, an edit of a restored file never changes
/// the cached object silently. `Copy` and `Reflink` give the work tree its
/// own bytes; `Hardlink` shares the cache's read-only inode, and the stat
/// index drops a cached object whose linked file was edited in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LinkMode {
    /// A plain copy (the default).
    #[default]
    Copy,
    /// A copy-on-write clone where the filesystem has them (btrfs, XFS,
    /// APFS-like), a copy elsewhere.
    Reflink,
    /// A hard link to the cached object, read-only like it; a copy where a
    /// link cannot be made (another filesystem).
    Hardlink,
}

impl LinkMode {
    pub const NAMES: &'static [&'static str] = &["copy", "reflink", "hardlink"];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Copy => "copy",
            Self::Reflink => "reflink",
            Self::Hardlink => "hardlink",
        }
    }
}

impl std::fmt::Display for LinkMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for LinkMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "copy" => Ok(Self::Copy),
            "reflink" => Ok(Self::Reflink),
            "hardlink" => Ok(Self::Hardlink),
            other => Err(format!(
                "expected one of {}, found `{other}`",
                Self::NAMES.join(", ")
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::LinkMode;

    #[test]
    fn names_round_trip_and_others_are_refused() {
        for n in LinkMode::NAMES {
            assert_eq!(n.parse::<LinkMode>().unwrap().as_str(), *n);
        }
        let e = "symlink".parse::<LinkMode>().unwrap_err();
        assert_eq!(
            e,
            "expected one of copy, reflink, hardlink, found `symlink`"
        );
    }
}
