//! Holes found by probing (issue 11): paths that leave the project, special
//! files, permissions of restored files, orphaned stages, leftover temporary
//! files, file names that are not UTF-8, peak memory, binary specs.

use crate::support::*;

// ---- 13. binary bytes in ferry.yaml

#[test]
fn binary_bytes_in_the_spec_are_a_spec_error_with_the_offset() {
    let p = Proj::new("");
    std::fs::write(
        p.path().join("ferry.yaml"),
        b"stages:\n  s:\n    cmd: echo \xff\xfe\n",
    )
    .unwrap();
    let o = p.ferry(&["status"]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(o.stderr.contains("ferry.yaml:3:15"), "{o:?}");
    assert!(o.stderr.contains("byte offset 27"), "{o:?}");
    assert!(!o.stderr.contains("UTF-8: stream"), "{o:?}");
}

#[test]
fn an_io_error_names_its_cause_once() {
    let p = Proj::new("stages:\n  s:\n    cmd: 'true'\n");
    std::fs::create_dir_all(p.path().join(".ferry")).unwrap();
    // The run lock's place is taken by a folder: opening it fails.
    std::fs::create_dir_all(p.path().join(".ferry/run.lock")).unwrap();
    let o = p.ferry(&["run"]);
    assert_ne!(o.code, 0, "{o:?}");
    let line = o.stderr.lines().find(|l| l.starts_with("error:")).unwrap();
    let cause = line.rsplit(": ").next().unwrap();
    assert_eq!(line.matches(cause).count(), 1, "{line}");
}
