//! Tables in every format, suites, validation with exact counts, profiles
//! that round-trip, drift, and bad input.

#![allow(clippy::unwrap_used)]

use ferry_data::{DataError, Suite, Table, TableSpec, check, drift, profile};
use std::fmt::Write as _;
use std::path::Path;

/// 1,000 rows with known defects:
/// - `id` 0..999, except rows 500 and 501 repeat ids 7 and 8;
/// - `price` = i % 100 (0..99), except rows 10, 20, 30 are 250 (out of range)
///   and rows 40, 41 are empty (missing);
/// - `cat` cycles a, b, c, except rows 3 and 600 are `zzz`;
/// - `code` = "C-<i>" except row 999 = "bad code".
fn write_csv(path: &Path) {
    let mut s = String::from("id,price,cat,code\n");
    for i in 0..1000u32 {
        let id = match i {
            500 => 7,
            501 => 8,
            _ => i,
        };
        let price = match i {
            10 | 20 | 30 => "250".to_string(),
            40 | 41 => String::new(),
            _ => format!("{}.5", i % 100),
        };
        let cat = if i == 3 || i == 600 {
            "zzz"
        } else {
            ["a", "b", "c"][i as usize % 3]
        };
        let code = if i == 999 {
            "bad code".to_string()
        } else {
            format!("C-{i}")
        };
        writeln!(s, "{id},{price},{cat},{code}").unwrap();
    }
    std::fs::write(path, s).unwrap();
}

const SUITE: &str = r#"
table:
  columns: [id, price, cat, code]
  rows: {min: 900, max: 1100}
columns:
  id: {type: int, not_null: true, unique: true, distinct: {min: 990}}
  price:
    type: float
    not_null: true
    max_null_share: 0.01
    between: {min: 0, max: 100}
    mean: {min: 40, max: 60}
    median: {min: 45, max: 55}
    quantiles: [{q: 0.9, min: 80, max: 100}]
  cat: {type: string, in_set: [a, b, c]}
  code: {type: string, regex: '^C-\d+$', length: {min: 3, max: 5}}
"#;

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn open(path: &Path) -> Table {
    Table::open(&TableSpec::new(path.to_string_lossy())).unwrap()
}

#[test]
fn every_injected_defect_is_found_with_its_exact_count() {
    let d = tmp();
    let csv = d.path().join("t.csv");
    write_csv(&csv);
    let suite = Suite::parse("suite.yaml", SUITE).unwrap();
    let mut r = check(&open(&csv), &suite).unwrap();
    r.relative_to(d.path());
    assert_eq!(r.rows, 1000);
    let get = |id: &str| r.get(id).unwrap_or_else(|| panic!("no result {id}"));
    assert!(get("table.columns").success);
    assert!(get("table.rows").success);
    assert!(get("id.type").success && get("price.type").success);
    // Two ids repeated: four rows share duplicated values.
    let u = get("id.unique");
    assert!(!u.success);
    assert_eq!(u.unexpected_count, Some(4));
    assert_eq!(
        u.sample.iter().map(|f| f.row).collect::<Vec<_>>(),
        vec![7, 8, 500, 501]
    );
    let b = get("price.between");
    assert_eq!(
        (b.success, b.unexpected_count, b.element_count),
        (false, Some(3), Some(998))
    );
    assert_eq!(
        b.sample.iter().map(|f| f.row).collect::<Vec<_>>(),
        vec![10, 20, 30]
    );
    assert_eq!(b.sample[0].value, serde_json::json!(250.0));
    // Row 10 is the file's line 12 (the header is line 1), and says so.
    assert_eq!(
        (b.sample[0].file.as_deref(), b.sample[0].line),
        (Some("t.csv"), Some(12))
    );
    assert_eq!(r.place(&b.sample[0]), "line 12");
    assert_eq!(b.failing_text().as_deref(), Some("3 rows (0.3%)"));
    assert_eq!(
        get("price.max_null_share").expected,
        "missing share at most 1%"
    );
    assert_eq!(get("price.max_null_share").observed_text(), "0.2%");
    let n = get("price.not_null");
    assert_eq!((n.success, n.unexpected_count), (false, Some(2)));
    assert_eq!(
        n.sample.iter().map(|f| f.row).collect::<Vec<_>>(),
        vec![40, 41]
    );
    let share = get("price.max_null_share");
    assert!(share.success);
    assert_eq!(share.observed, serde_json::json!(0.002));
    let s = get("cat.in_set");
    assert_eq!((s.success, s.unexpected_count), (false, Some(2)));
    assert_eq!(s.unexpected_values, vec![("zzz".to_string(), 2)]);
    let re = get("code.regex");
    assert_eq!((re.success, re.unexpected_count), (false, Some(1)));
    assert_eq!(re.sample[0].row, 999);
    // "C-100".."C-998" are 5 characters; "bad code" is 8.
    let len = get("code.length");
    assert_eq!(len.unexpected_count, Some(1));
    assert!(get("id.distinct").success);
    assert!(get("price.quantile(0.9)").success);
    assert!(get("price.mean").success, "{:?}", get("price.mean"));
    assert_eq!(r.failed, 6);
    assert!(!r.passed);
    // The JSON shape, pinned.
    let mut v = serde_json::to_value(&r).unwrap();
    v["source"] = "t.csv".into();
    insta::assert_json_snapshot!("check_report", v);
}

#[test]
fn mostly_lets_a_share_of_rows_fail() {
    let d = tmp();
    let csv = d.path().join("t.csv");
    write_csv(&csv);
    let suite = Suite::parse(
        "s.yaml",
        "columns:\n  price: {between: {min: 0, max: 100, mostly: 0.996}}\n  cat: {in_set: {values: [a, b, c], mostly: 0.99}}\n",
    )
    .unwrap();
    let r = check(&open(&csv), &suite).unwrap();
    assert!(r.passed, "{:#?}", r.results);
    // 3 of the 998 non-missing values fail: 0.3006% > 0.3%.
    let strict = Suite::parse(
        "s.yaml",
        "columns:\n  price: {between: {min: 0, max: 100, mostly: 0.997}}\n",
    )
    .unwrap();
    assert!(!check(&open(&csv), &strict).unwrap().passed);
}

/// The same rows as Parquet and JSON lines give the same results.
#[test]
fn csv_parquet_and_json_lines_agree() {
    let d = tmp();
    let csv = d.path().join("t.csv");
    write_csv(&csv);
    let suite = Suite::parse("s.yaml", SUITE).unwrap();
    let from_csv = check(&open(&csv), &suite).unwrap();
    // Parquet, written with arrow from the CSV's batches.
    let t = open(&csv);
    let pq = d.path().join("t.parquet");
    {
        let f = std::fs::File::create(&pq).unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(f, t.schema.clone(), None).unwrap();
        for b in t.batches() {
            w.write(&b.unwrap().1).unwrap();
        }
        w.close().unwrap();
    }
    // JSON lines, by hand.
    let jl = d.path().join("t.jsonl");
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut out = String::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let price = if f[1].is_empty() {
            "null".to_string()
        } else {
            f[1].to_string()
        };
        writeln!(
            out,
            r#"{{"id": {}, "price": {price}, "cat": "{}", "code": "{}"}}"#,
            f[0], f[2], f[3]
        )
        .unwrap();
    }
    std::fs::write(&jl, out).unwrap();
    for other in [&pq, &jl] {
        let r = check(&open(other), &suite).unwrap();
        for (a, b) in from_csv.results.iter().zip(&r.results) {
            assert_eq!(
                (a.success, a.unexpected_count, &a.observed),
                (b.success, b.unexpected_count, &b.observed),
                "{} differs for {}",
                a.id,
                other.display()
            );
        }
    }
}

#[test]
fn folders_and_globs_read_every_file_with_global_row_numbers() {
    let d = tmp();
    let dir = d.path().join("batches");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("a.csv"), "x\n1\n2\n").unwrap();
    std::fs::write(dir.join("b.csv"), "x\n3\n400\n").unwrap();
    let suite = Suite::parse("s.yaml", "columns:\n  x: {between: {min: 0, max: 10}}\n").unwrap();
    for path in [
        dir.to_string_lossy().into_owned(),
        format!("{}/*.csv", dir.display()),
    ] {
        let t = Table::open(&TableSpec::new(path)).unwrap();
        let mut r = check(&t, &suite).unwrap();
        r.relative_to(d.path());
        assert_eq!(r.rows, 4);
        assert_eq!(r.files.len(), 2);
        // Row 3 of the table is b.csv's second row, on its line 3.
        let f = &r.results[0].sample[0];
        assert_eq!(f.row, 3);
        assert_eq!(
            (f.file.as_deref(), f.line),
            (Some("batches/b.csv"), Some(3))
        );
        assert_eq!(r.place(f), "batches/b.csv:3");
    }
}

/// A failing row is placed on its file's own line, whatever comes before
/// it: blank lines, a quoted field spanning lines, rows of other files; in
/// Parquet, where there are no lines, by its 1-based row.
#[test]
fn failing_rows_are_placed_on_their_own_lines() {
    let d = tmp();
    let suite = Suite::parse("s.yaml", "columns:\n  x: {between: {min: 0, max: 10}}\n").unwrap();
    // Lines: 1 header, 2 a row, 3 blank, 4-5 one row (a quoted note over
    // two lines), 6 blank, 7 the failing row.
    let csv = d.path().join("t.csv");
    std::fs::write(&csv, "x,note\n1,a\n\n2,\"two\nlines\"\n\n99,b\n").unwrap();
    let r = check(&open(&csv), &suite).unwrap();
    let f = &r.results[0].sample[0];
    assert_eq!((f.row, f.line), (2, Some(7)), "{f:?}");
    assert_eq!(r.place(f), "line 7");
    let json = serde_json::to_value(f).unwrap();
    assert_eq!(json["row"], 2);
    assert_eq!(json["line"], 7);
    assert!(json["file"].as_str().unwrap().ends_with("t.csv"), "{json}");
    // Without a header, line 1 is the first row.
    let bare = d.path().join("bare.csv");
    std::fs::write(&bare, "1\n99\n").unwrap();
    let mut spec = TableSpec::new(bare.to_string_lossy());
    spec.csv.header = false;
    let t = Table::open(&spec).unwrap();
    let s = Suite::parse(
        "s.yaml",
        "columns:\n  column_1: {between: {min: 0, max: 10}}\n",
    )
    .unwrap();
    let r = check(&t, &s).unwrap();
    assert_eq!(r.place(&r.results[0].sample[0]), "line 2");
    // JSON lines: blank lines skipped.
    let jl = d.path().join("t.jsonl");
    std::fs::write(&jl, "{\"x\": 1}\n\n{\"x\": 2}\n{\"x\": 99}\n").unwrap();
    let r = check(&open(&jl), &suite).unwrap();
    assert_eq!(r.place(&r.results[0].sample[0]), "line 4");
    // Parquet: the 1-based row, in its file when there are several.
    let t = open(&csv);
    let dir = d.path().join("pq");
    std::fs::create_dir(&dir).unwrap();
    for name in ["a.parquet", "b.parquet"] {
        let f = std::fs::File::create(dir.join(name)).unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(f, t.schema.clone(), None).unwrap();
        for b in t.batches() {
            w.write(&b.unwrap().1).unwrap();
        }
        w.close().unwrap();
    }
    let r = check(&open(&dir.join("a.parquet")), &suite).unwrap();
    let f = &r.results[0].sample[0];
    assert_eq!((f.row, f.line), (2, None));
    assert_eq!(r.place(f), "row 3");
    let mut r = check(&open(&dir), &suite).unwrap();
    r.relative_to(d.path());
    let places: Vec<String> = r.results[0].sample.iter().map(|f| r.place(f)).collect();
    assert_eq!(places, ["pq/a.parquet row 3", "pq/b.parquet row 3"]);
    assert_eq!(r.results[0].sample[1].row, 5);
    // The HTML report says the same.
    let html = ferry_data::report::check_html(&r);
    assert!(html.contains("<td>pq/b.parquet row 3</td>"), "{html}");
    assert!(html.contains("2 rows (33.33%)"), "{html}");
}

#[test]
fn a_profile_gives_a_suite_the_same_batch_passes() {
    let d = tmp();
    let csv = d.path().join("t.csv");
    write_csv(&csv);
    let p = profile(&open(&csv)).unwrap();
    let price = p.columns.iter().find(|c| c.name == "price").unwrap();
    assert_eq!(price.missing, 2);
    assert_eq!(price.max, Some(250.0));
    let cat = p.columns.iter().find(|c| c.name == "cat").unwrap();
    assert_eq!(cat.levels.as_ref().unwrap().len(), 4);
    let yaml = p.suite_yaml();
    let suite = Suite::parse("profiled.yaml", &yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    let r = check(&open(&csv), &suite).unwrap();
    assert!(
        r.passed,
        "{yaml}\n{:#?}",
        r.results.iter().filter(|x| !x.success).collect::<Vec<_>>()
    );
    assert!(
        yaml.contains("cat: {type: string, not_null: true, in_set: [a, b, c, zzz]}"),
        "{yaml}"
    );
    assert!(
        yaml.contains(
            "code: {type: string, not_null: true, length: {min: 3, max: 8}, max_empty_share: 0, unique: true}"
        ),
        "{yaml}"
    );
}

#[test]
fn bad_input_gives_clear_errors() {
    let d = tmp();
    // A missing file.
    let e = Table::open(&TableSpec::new(d.path().join("nope.csv").to_string_lossy())).unwrap_err();
    assert!(
        e.to_string().ends_with("nope.csv: no such file or folder"),
        "{e}"
    );
    // A value that does not parse as the declared type: file, line, column.
    let csv = d.path().join("bad.csv");
    std::fs::write(&csv, "a,b\n1,2\n3,oops\n").unwrap();
    let mut spec = TableSpec::new(csv.to_string_lossy());
    spec.types.insert("b".into(), ferry_data::ColType::Float);
    let t = Table::open(&spec).unwrap();
    let suite = Suite::parse("s.yaml", "columns:\n  b: {not_null: true}\n").unwrap();
    let e = check(&t, &suite).unwrap_err();
    assert!(
        matches!(e, DataError::Parse { ref column, line: Some(3), .. } if column == "b"),
        "{e:?}"
    );
    // The file's own line number (the header is line 1).
    assert!(e.to_string().contains("bad.csv:3: column `b`"), "{e}");
    assert!(e.to_string().contains("at line 3"), "{e}");
    assert!(e.to_string().contains("oops"), "{e}");
    // arrow counts records, not lines: a quoted field over two lines and a
    // blank line before the bad value still give the file's own line.
    let csv = d.path().join("quoted.csv");
    std::fs::write(&csv, "a,b\n1,\"x\ny\"\n\noops,z\n").unwrap();
    let mut spec = TableSpec::new(csv.to_string_lossy());
    spec.types.insert("a".into(), ferry_data::ColType::Float);
    let e = check(&Table::open(&spec).unwrap(), &suite).unwrap_err();
    assert!(e.to_string().contains("quoted.csv:5: column `a`"), "{e}");
    assert!(e.to_string().contains("at line 5"), "{e}");
    // A row with too few fields, after a blank line.
    let short = d.path().join("short.csv");
    std::fs::write(&short, "a,b\n1,2\n\n3\n").unwrap();
    let e = Table::open(&TableSpec::new(short.to_string_lossy())).unwrap_err();
    assert!(matches!(e, DataError::Line { line: 4, .. }), "{e:?}");
    assert!(
        e.to_string()
            .ends_with("short.csv:4: 1 field where the header has 2"),
        "{e}"
    );
    // An empty table.
    let empty = d.path().join("empty.csv");
    std::fs::write(&empty, "a,b\n").unwrap();
    let e = check(&open(&empty), &suite).unwrap_err();
    assert!(
        e.to_string().ends_with("empty.csv: the table has no rows"),
        "{e}"
    );
    // A column the suite names that the table lacks: the rule fails, named.
    let ok = d.path().join("ok.csv");
    std::fs::write(&ok, "a\n1\n").unwrap();
    let r = check(&open(&ok), &suite).unwrap();
    assert!(!r.passed);
    assert_eq!(r.results[0].id, "b.not_null");
    assert_eq!(
        r.results[0].observed,
        serde_json::json!("no column `b` in the table")
    );
    // A rule that needs numbers on a string column fails, saying why.
    let s = Suite::parse("s.yaml", "columns:\n  a: {mean: {min: 0}}\n").unwrap();
    let strs = d.path().join("s.csv");
    std::fs::write(&strs, "a\nx\n").unwrap();
    let r = check(&open(&strs), &s).unwrap();
    assert_eq!(
        r.results[0].observed,
        serde_json::json!("the column is string, not numeric")
    );
}

/// A malformed line in a JSON lines file is named by the file and its own
/// line number, in the middle of a file: among the rows schema inference
/// reads (arrow parses each line alone there, so its own message says
/// `line 1`), and past them, where arrow's reader names no line at all.
#[test]
fn a_json_lines_error_names_its_file_and_line() {
    let d = tmp();
    let suite = Suite::parse("s.yaml", "columns:\n  x: {not_null: true}\n").unwrap();
    let rows = |bad_at: usize, bad: &str| {
        let mut s = String::new();
        for i in 1..=10 {
            if i == bad_at {
                s.push_str(bad);
                s.push('\n');
            } else if i == 3 {
                s.push('\n');
            } else {
                writeln!(s, r#"{{"x": {i}, "y": "a"}}"#).unwrap();
            }
        }
        s
    };
    // Line 6 of 10, read by inference: the table does not open.
    let jl = d.path().join("t.jsonl");
    std::fs::write(&jl, rows(6, r#"  {"x": 6, "y": }"#)).unwrap();
    let e = Table::open(&TableSpec::new(jl.to_string_lossy())).unwrap_err();
    assert!(
        matches!(
            e,
            DataError::Line {
                line: 6,
                column: Some(17),
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .ends_with("t.jsonl:6:17: not valid JSON: expected value"),
        "{e}"
    );
    // Past the rows inference reads (2 here): met by the reader.
    let mut spec = TableSpec::new(jl.to_string_lossy());
    spec.csv.infer_rows = 2;
    std::fs::write(&jl, rows(7, r#"{"x": 7, "y": }"#)).unwrap();
    let e = check(&Table::open(&spec).unwrap(), &suite).unwrap_err();
    assert!(matches!(e, DataError::Line { line: 7, .. }), "{e:?}");
    assert!(e.to_string().contains("t.jsonl:7: "), "{e}");
    // A row not closed on its own line: named where it starts, and where
    // the reader noticed.
    std::fs::write(&jl, rows(9, r#"{"x": 9, "y": "a""#)).unwrap();
    let e = check(&Table::open(&spec).unwrap(), &suite).unwrap_err();
    assert!(
        e.to_string()
            .contains("t.jsonl:9: the row that starts here does not end on its line; at line 10: "),
        "{e}"
    );
    // A value of another type than inference found: its line and column.
    std::fs::write(&jl, rows(8, r#"{"x": "eight", "y": "a"}"#)).unwrap();
    let e = check(&Table::open(&spec).unwrap(), &suite).unwrap_err();
    assert!(
        matches!(e, DataError::Parse { ref column, line: Some(8), .. } if column == "x"),
        "{e:?}"
    );
    assert!(e.to_string().contains("t.jsonl:8: column `x`"), "{e}");
}

/// Reference and current tables for drift: `same` is identically
/// distributed, `shifted` moves by one standard deviation, `cat` gains a
/// new level at 30%.
fn drift_tables(d: &Path, n: usize) -> (Table, Table) {
    let mut r = String::from("same,shifted,cat\n");
    let mut c = String::from("same,shifted,cat\n");
    // A fixed, well-spread sequence (van der Corput), mapped to N(0,1)-ish.
    let vdc = |mut i: usize| {
        let (mut q, mut b) = (0.0, 0.5);
        i += 1;
        while i > 0 {
            if i & 1 == 1 {
                q += b;
            }
            i >>= 1;
            b /= 2.0;
        }
        q
    };
    for i in 0..n {
        let u = vdc(i);
        let u2 = vdc(i + 7919);
        let levels = ["x", "y", "z"];
        writeln!(r, "{},{},{}", u * 10.0, u * 10.0, levels[i % 3]).unwrap();
        let cat = if i % 10 < 3 { "new" } else { levels[i % 3] };
        writeln!(c, "{},{},{}", u2 * 10.0, u2 * 10.0 + 3.0, cat).unwrap();
    }
    std::fs::write(d.join("ref.csv"), r).unwrap();
    std::fs::write(d.join("cur.csv"), c).unwrap();
    (open(&d.join("ref.csv")), open(&d.join("cur.csv")))
}

#[test]
fn drift_flags_exactly_the_shifted_columns_with_both_default_regimes() {
    for n in [500, 5000] {
        let d = tmp();
        let (r, c) = drift_tables(d.path(), n);
        let rep = drift(&r, &c, &Default::default()).unwrap();
        let flagged: Vec<&str> = rep
            .columns
            .iter()
            .filter(|c| c.drifted)
            .map(|c| c.column.as_str())
            .collect();
        assert_eq!(
            flagged,
            vec!["shifted", "cat"],
            "n = {n}: {:#?}",
            rep.columns
        );
        let m = |col: &str| rep.get(col).unwrap().method;
        use ferry_data::drift::Method;
        if n <= 1000 {
            assert_eq!((m("same"), m("cat")), (Method::Ks, Method::ChiSquare));
        } else {
            assert_eq!(
                (m("same"), m("cat")),
                (Method::Wasserstein, Method::JensenShannon)
            );
        }
        assert!(rep.dataset_drift, "2 of 3 columns drifted");
        assert_eq!(rep.drifted, 2);
        let html = ferry_data::report::drift_html(&rep);
        assert!(html.contains("<svg") && !html.contains("<script"));
    }
}

/// A column given value by value (`None` is empty): name, reference, current.
type RawColumn<'a> = (&'a str, Vec<Option<String>>, Vec<Option<String>>);

/// Writes `name` with one column per `(column, reference counts, current
/// counts)`: value `v` repeated `counts[v]` times; `None` values are empty.
fn count_tables(
    d: &Path,
    cols: &[(&str, Vec<usize>, Vec<usize>)],
    extra: &[RawColumn<'_>],
) -> (Table, Table) {
    let expand = |counts: &[usize]| -> Vec<Option<String>> {
        counts
            .iter()
            .enumerate()
            .flat_map(|(v, &n)| std::iter::repeat_n(Some(v.to_string()), n))
            .collect()
    };
    let mut tables = Vec::new();
    for (side, file) in [(0, "ref.csv"), (1, "cur.csv")] {
        let mut columns: Vec<(&str, Vec<Option<String>>)> = cols
            .iter()
            .map(|(n, r, c)| (*n, expand(if side == 0 { r } else { c })))
            .collect();
        for (n, r, c) in extra {
            columns.push((n, if side == 0 { r.clone() } else { c.clone() }));
        }
        let rows = columns[0].1.len();
        assert!(columns.iter().all(|c| c.1.len() == rows), "{file}: ragged");
        let mut out = columns.iter().map(|c| c.0).collect::<Vec<_>>().join(",");
        out.push('\n');
        for i in 0..rows {
            let row: Vec<&str> = columns
                .iter()
                .map(|c| c.1[i].as_deref().unwrap_or(""))
                .collect();
            writeln!(out, "{}", row.join(",")).unwrap();
        }
        std::fs::write(d.join(file), out).unwrap();
        tables.push(open(&d.join(file)));
    }
    let c = tables.pop().unwrap();
    (tables.pop().unwrap(), c)
}

fn close(got: f64, want: f64) -> bool {
    (got - want).abs() <= 1e-9 * want.abs().max(1e-300)
}

/// Evidently types a column from the current table: an integer column with
/// at most 10 distinct values is categorical (chi-square or z on small
/// references, Jensen-Shannon on large ones), with 11 it is numerical (KS,
/// Wasserstein). Expected values from scipy 1.17.1 (`ferry/tests/compat`
/// venv): `chisquare(cur, ref * n_cur / n_ref)`, `ks_2samp`,
/// `jensenshannon(ref_shares, cur_shares)`, `wasserstein_distance / std`.
#[test]
fn integer_columns_are_typed_as_evidently_types_them() {
    use ferry_data::drift::Method;
    // Small reference (200 rows). `ten`: the reference has 11 values (10
    // appears 5 times), the current 10: the current decides, categorical.
    // `eleven`: the other way round, numerical.
    let d = tmp();
    let (r, c) = count_tables(
        d.path(),
        &[
            (
                "ten",
                vec![22, 18, 20, 20, 20, 20, 20, 20, 18, 17, 5],
                vec![14, 16, 20, 22, 24, 26, 20, 20, 18, 20],
            ),
            ("eleven", vec![20; 10], [vec![18; 10], vec![20]].concat()),
        ],
        &[
            // An integer column with a gap in the current table is read as
            // floats by pandas: numerical even with 10 values.
            (
                "gaps",
                (0..200).map(|i| Some((i / 20).to_string())).collect(),
                (0..200)
                    .map(|i| (i != 199).then(|| (i / 20).to_string()))
                    .collect(),
            ),
            // 101 distinct strings in 200 values: text, for the domain
            // classifier.
            (
                "note",
                (0..200).map(|i| Some(format!("r{i}"))).collect(),
                (0..200).map(|i| Some(format!("t{}", i % 101))).collect(),
            ),
            // Exactly half distinct: still categorical.
            (
                "half",
                (0..200).map(|i| Some(format!("h{}", i % 100))).collect(),
                (0..200)
                    .map(|i| Some(format!("h{}", (i + 1) % 100)))
                    .collect(),
            ),
        ],
    );
    let rep = drift(&r, &c, &Default::default()).unwrap();
    let col = |n: &str| rep.get(n).unwrap_or_else(|| panic!("{n}: {rep:#?}"));
    let ten = col("ten");
    assert_eq!((ten.kind, ten.method), ("categorical", Method::ChiSquare));
    assert!(close(ten.value, 0.32276671436096055), "{ten:#?}");
    assert!(
        close(ten.statistic.unwrap(), 11.460724896019014),
        "{ten:#?}"
    );
    assert_eq!(ten.histogram.levels.len(), 11, "values are the levels");
    assert!(!ten.drifted);
    let eleven = col("eleven");
    assert_eq!((eleven.kind, eleven.method), ("numerical", Method::Ks));
    assert!(close(eleven.value, 0.2704743832803917), "{eleven:#?}");
    assert!(close(eleven.effect_size, 0.1));
    let gaps = col("gaps");
    assert_eq!((gaps.kind, gaps.method), ("numerical", Method::Ks));
    assert!(
        close(gaps.value, 1.0) && close(gaps.effect_size, 0.004522613065326633),
        "{gaps:#?}"
    );
    let half = col("half");
    assert_eq!((half.kind, half.method), ("categorical", Method::ChiSquare));
    let note = col("note");
    assert_eq!((note.kind, note.method), ("text", Method::DomainClassifier));
    // `r12` and `t12` share no word: the classifier tells them apart.
    assert!(note.drifted && note.value > 0.7, "{note:#?}");
    assert_eq!(rep.columns.len(), 5, "text counts in the share");
    let json = serde_json::to_value(&rep).unwrap();
    let note_json = json["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["column"] == "note")
        .unwrap();
    assert_eq!(note_json["method"], "domain_classifier");
    assert!(note_json["text"]["classifier"]["typical_words_current"].is_array());
    assert!(ferry_data::report::drift_html(&rep).contains("typical words in current"));
    // A method given for a column still wins, text included.
    let opts = ferry_data::DriftOptions {
        methods: [
            ("ten".to_string(), Method::Ks),
            ("note".to_string(), Method::ChiSquare),
        ]
        .into(),
        ..Default::default()
    };
    let rep = drift(&r, &c, &opts).unwrap();
    assert_eq!(rep.get("ten").unwrap().method, Method::Ks);
    assert!(close(rep.get("ten").unwrap().value, 0.9646522162314058));
    let note = rep.get("note").unwrap();
    assert_eq!((note.kind, note.method), ("text", Method::ChiSquare));
    let text = note
        .text
        .as_ref()
        .expect("descriptors for text compared as levels");
    assert!(text.classifier.is_none() && text.get("chars_mean") == Some((3.45, 2.905)));
    let rep = drift(
        &r,
        &c,
        &ferry_data::DriftOptions {
            method: Some(Method::Psi),
            ..Default::default()
        },
    )
    .unwrap();
    // The method for every column leaves text to the domain classifier.
    assert!(
        rep.columns
            .iter()
            .all(|c| c.method == Method::Psi || c.column == "note")
            && rep.columns.len() == 5
    );
    assert_eq!(rep.get("note").unwrap().method, Method::DomainClassifier);

    // Large reference (2000 rows): the current's 10 values make `ten`
    // categorical, so Jensen-Shannon (0.083, no drift) where Wasserstein
    // would have flagged it (0.218).
    let d = tmp();
    let (r, c) = count_tables(
        d.path(),
        &[
            (
                "ten",
                vec![200; 10],
                vec![120, 140, 160, 180, 200, 220, 240, 250, 250, 240],
            ),
            ("eleven", vec![200; 10], [vec![180; 10], vec![200]].concat()),
        ],
        &[],
    );
    let rep = drift(&r, &c, &Default::default()).unwrap();
    let ten = rep.get("ten").unwrap();
    assert_eq!(
        (ten.kind, ten.method),
        ("categorical", Method::JensenShannon)
    );
    assert!(close(ten.value, 0.08346703709743099), "{ten:#?}");
    assert!(!ten.drifted);
    let eleven = rep.get("eleven").unwrap();
    assert_eq!(
        (eleven.kind, eleven.method),
        ("numerical", Method::Wasserstein)
    );
    assert!(close(eleven.value, 0.1914854215512676), "{eleven:#?}");
    assert!(eleven.drifted);
    let rep = drift(
        &r,
        &c,
        &ferry_data::DriftOptions {
            method: Some(Method::Wasserstein),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(close(rep.get("ten").unwrap().value, 0.2175970699446223));
}

/// Over a prediction log, most rows may lack a column: each column says
/// how many rows its test used, and says it loudly when they are far fewer
/// than the table's.
#[test]
fn drift_says_how_many_rows_each_test_used() {
    let d = tmp();
    let mut r = String::from("a,b\n");
    for i in 0..150 {
        writeln!(r, "{},{}", i % 10, i % 7).unwrap();
    }
    let mut c = String::new();
    for i in 0..1000 {
        if i % 140 == 0 {
            writeln!(c, r#"{{"a": {}, "b": {}}}"#, i % 10, i % 7).unwrap();
        } else {
            writeln!(c, r#"{{"a": {}}}"#, i % 10).unwrap();
        }
    }
    std::fs::write(d.path().join("ref.csv"), r).unwrap();
    std::fs::write(d.path().join("log.jsonl"), c).unwrap();
    let rep = drift(
        &open(&d.path().join("ref.csv")),
        &open(&d.path().join("log.jsonl")),
        &Default::default(),
    )
    .unwrap();
    assert_eq!((rep.current_rows, rep.reference_rows), (1000, 150));
    let (a, b) = (rep.get("a").unwrap(), rep.get("b").unwrap());
    assert_eq!((a.current_rows, a.reference_rows), (1000, 150));
    assert_eq!((b.current_rows, b.reference_rows), (8, 150));
    assert_eq!(b.current_missing, 992);
    assert_eq!(rep.rows_used(a), "1,000 / 150 rows");
    assert_eq!(rep.rows_used(b), "8 / 150 rows");
    assert_eq!(rep.rows_note(a), None);
    assert_eq!(
        rep.rows_note(b).as_deref(),
        Some("only 8 of 1,000 current rows have a value")
    );
    let json = serde_json::to_value(&rep).unwrap();
    let col = |n: &str| {
        json["columns"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["column"] == n)
            .cloned()
            .unwrap()
    };
    assert_eq!(col("b")["current_rows"], 8);
    assert_eq!(col("b")["reference_rows"], 150);
    let html = ferry_data::report::drift_html(&rep);
    assert!(html.contains("rows used (current / reference)"), "{html}");
    assert!(
        html.contains(
            "8 / 150 rows <span class=\"warn\">(only 8 of 1,000 current rows have a value)</span>"
        ),
        "{html}"
    );
}

#[test]
fn huge_samples_need_an_effect_not_just_a_p_value() {
    let d = tmp();
    let (r, c) = drift_tables(d.path(), 20_000);
    let opts = ferry_data::DriftOptions {
        method: Some(ferry_data::drift::Method::Ks),
        columns: Some(vec!["same".into()]),
        ..Default::default()
    };
    let rep = drift(&r, &c, &opts).unwrap();
    let col = &rep.columns[0];
    assert_eq!(col.min_effect, Some(0.1));
    assert!(!col.drifted, "{col:#?}");
    let e = drift(
        &r,
        &c,
        &ferry_data::DriftOptions {
            columns: Some(vec!["missing".into()]),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("no column `missing`"), "{e}");
}

/// Edge cases a review found: levels counted per value, YAML-ish levels
/// quoted, empty-looking columns, timestamp and bool sets, typos in rule
/// options, infinities in drift.
#[test]
fn edge_cases_of_profiles_sets_and_drift() {
    let d = tmp();
    let csv = d.path().join("e.csv");
    let mut s = String::from("k,lvl,flag,ts,late\n");
    for i in 0..200 {
        let lvl = ["Null", "-", "FALSE", "0x1F", ".inf"][i % 5];
        let late = if i == 199 { "X" } else { "" };
        writeln!(
            s,
            "{},{lvl},{},2024-01-0{}T00:00:00,{late}",
            [1, 1, 1, 2][i % 4],
            i % 2 == 0,
            1 + i % 3
        )
        .unwrap();
    }
    std::fs::write(&csv, s).unwrap();
    let mut spec = TableSpec::new(csv.to_string_lossy());
    spec.csv.infer_rows = 100;
    let t = Table::open(&spec).unwrap();
    let p = profile(&t).unwrap();
    let k = p.columns.iter().find(|c| c.name == "k").unwrap();
    assert_eq!(k.levels.as_ref().unwrap()[0], ("1".to_string(), 150));
    // The profiled suite parses and the profiled table passes it.
    let yaml = p.suite_yaml();
    let suite = Suite::parse("p.yaml", &yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    let r = check(&t, &suite).unwrap();
    assert!(
        r.passed,
        "{yaml}\n{:#?}",
        r.results.iter().filter(|x| !x.success).collect::<Vec<_>>()
    );
    // A column empty in the rows inference read is text, not an error.
    let late = p.columns.iter().find(|c| c.name == "late").unwrap();
    assert_eq!(late.missing, 199);
    // Sets of timestamps and booleans.
    let sets = Suite::parse(
        "s.yaml",
        "columns:\n  ts: {type: timestamp, in_set: [\"2024-01-01\", \"2024-01-02T00:00:00\", \"2024-01-03\"]}\n  flag: {in_set: [\"true\", \"false\"]}\n",
    )
    .unwrap();
    let r = check(&t, &sets).unwrap();
    assert!(r.passed, "{:#?}", r.results);
    // Typos in rule options are errors.
    assert!(Suite::parse("s.yaml", "columns:\n  k: {unique: {mosty: 0.5}}\n").is_err());
    assert!(
        Suite::parse(
            "s.yaml",
            "columns:\n  k: {in_set: {values: [1], mosty: 0.5}}\n"
        )
        .is_err()
    );
    // Infinities are dropped from drift comparisons (counted as missing).
    let a = d.path().join("a.csv");
    let b = d.path().join("b.csv");
    let col = |extra: &str| {
        let mut s = String::from("x\n");
        for i in 0..50 {
            writeln!(s, "{}", i as f64 * 0.1).unwrap();
        }
        s.push_str(extra);
        s
    };
    std::fs::write(&a, col("")).unwrap();
    std::fs::write(&b, col("inf\n")).unwrap();
    let mut sa = TableSpec::new(a.to_string_lossy());
    sa.types.insert("x".into(), ferry_data::ColType::Float);
    let mut sb = TableSpec::new(b.to_string_lossy());
    sb.types.insert("x".into(), ferry_data::ColType::Float);
    let rep = drift(
        &Table::open(&sa).unwrap(),
        &Table::open(&sb).unwrap(),
        &Default::default(),
    )
    .unwrap();
    assert_eq!(rep.columns[0].current_missing, 1);
    assert!(!rep.columns[0].drifted);
    assert_eq!(
        rep.columns[0].min_effect, None,
        "small samples need no minimum effect"
    );
}

const COMMON: [&str; 20] = [
    "product",
    "bought",
    "really",
    "quality",
    "price",
    "recommend",
    "happy",
    "disappointed",
    "item",
    "order",
    "works",
    "great",
    "bad",
    "okay",
    "value",
    "money",
    "brand",
    "week",
    "month",
    "use",
];
const DELIVERY: [&str; 15] = [
    "delivery",
    "courier",
    "package",
    "arrived",
    "late",
    "shipping",
    "box",
    "damaged",
    "tracking",
    "parcel",
    "driver",
    "doorstep",
    "dispatch",
    "warehouse",
    "postman",
];
const BATTERY: [&str; 15] = [
    "battery",
    "charge",
    "charging",
    "hours",
    "drains",
    "lasts",
    "charger",
    "power",
    "overnight",
    "percent",
    "cable",
    "dies",
    "standby",
    "recharge",
    "capacity",
];

/// `n` reviews of 6 to 12 words, half from the common words, half about
/// the topic: delivery, battery life, or (`None`) either at random.
fn reviews(n: usize, topic: Option<&[&str]>, seed: u64) -> Vec<String> {
    let mut rng = ferry_stats::Rng::new(seed);
    (0..n)
        .map(|_| {
            let pool: &[&str] = match topic {
                Some(t) => t,
                None if rng.below(2) == 0 => &DELIVERY,
                None => &BATTERY,
            };
            let len = 6 + rng.below(7);
            let words: Vec<&str> = (0..len)
                .map(|k| {
                    let from: &[&str] = if k % 2 == 0 { &COMMON } else { pool };
                    from[rng.below(from.len() as u64) as usize]
                })
                .collect();
            let mut text = words.join(" ");
            if rng.below(4) == 0 {
                text.push('!');
            }
            text
        })
        .collect()
}

/// A JSON lines table with one `review` column.
fn text_table(path: &Path, texts: &[String]) -> Table {
    let mut s = String::new();
    for t in texts {
        writeln!(s, "{}", serde_json::json!({ "review": t })).unwrap();
    }
    std::fs::write(path, s).unwrap();
    open(path)
}

fn text_drift(reference: &[String], current: &[String]) -> ferry_data::drift::ColumnDrift {
    let d = tmp();
    let r = text_table(&d.path().join("ref.jsonl"), reference);
    let c = text_table(&d.path().join("cur.jsonl"), current);
    let rep = drift(&r, &c, &Default::default()).unwrap();
    rep.get("review").unwrap().clone()
}

/// Reviews about delivery, then about battery life: the domain classifier
/// tells them apart on a small reference (against a random classifier's
/// 95th percentile) and on a large one (against 0.55), and names the
/// words that tell.
#[test]
fn a_shifted_vocabulary_drifts_with_the_words_that_tell() {
    use ferry_data::drift::Method;
    for (n, from, threshold) in [
        (300, "random_classifier", None),
        (1500, "absolute", Some(0.55)),
    ] {
        let c = text_drift(
            &reviews(n, Some(&DELIVERY), 1),
            &reviews(n, Some(&BATTERY), 2),
        );
        assert_eq!((c.kind, c.method), ("text", Method::DomainClassifier));
        assert!(c.drifted && c.value > 0.95, "n = {n}: {c:#?}");
        let text = c.text.as_ref().unwrap();
        let k = text.classifier.as_ref().unwrap();
        assert_eq!(k.threshold_from, from);
        assert_eq!((k.roc_auc, k.threshold), (c.value, c.threshold));
        if let Some(t) = threshold {
            assert_eq!(c.threshold, t);
        } else {
            // A random scorer on ~150 texts a side: ~0.5 + 1.645 * 0.033.
            assert!((0.52..0.6).contains(&c.threshold), "{}", c.threshold);
        }
        assert_eq!(
            k.train_reference + k.train_current + k.test_reference + k.test_current,
            2 * n as u64
        );
        assert_eq!(k.test_reference + k.test_current, n as u64);
        // The telling words are the topics', each on its side.
        assert!(!k.typical_words_current.is_empty() && !k.typical_words_reference.is_empty());
        assert!(
            k.typical_words_current[..5]
                .iter()
                .all(|w| BATTERY.contains(&w.as_str())),
            "{:?}",
            k.typical_words_current
        );
        assert!(
            k.typical_words_reference[..5]
                .iter()
                .all(|w| DELIVERY.contains(&w.as_str())),
            "{:?}",
            k.typical_words_reference
        );
        assert!(
            BATTERY
                .iter()
                .any(|w| k.typical_examples_current[0].contains(w))
        );
        // Every current word is new to a reference about delivery but the
        // common half; a fresh reference sample brings next to none.
        let oov = text.get("oov_share").unwrap();
        assert!(oov.0 < 0.01 && (0.4..0.6).contains(&oov.1), "{oov:?}");
        assert_eq!(c.histogram.edges.len(), 31, "a chart of the texts' length");
    }
}

/// Two samples of the same corpus: no drift, whatever the seed, on small
/// and large references.
#[test]
fn a_resample_of_the_same_corpus_does_not_drift() {
    for (n, seeds) in [(300, 1..=6), (1500, 1..=2)] {
        for seed in seeds {
            let c = text_drift(&reviews(n, None, seed), &reviews(n, None, 100 + seed));
            assert!(
                !c.drifted && (0.4..0.6).contains(&c.value),
                "n = {n}, seed {seed}: {c:#?}"
            );
        }
    }
}

/// The same texts give the same answer, however the rows are ordered;
/// a threshold for the column (or `--method domain_classifier` with a
/// threshold for every column) replaces Evidently's bar, one for every
/// column alone does not.
#[test]
fn text_drift_is_deterministic_and_takes_its_own_threshold() {
    use ferry_data::drift::Method;
    let d = tmp();
    let reference = reviews(200, Some(&DELIVERY), 5);
    let mut current = reviews(100, Some(&DELIVERY), 6);
    current.extend(reviews(100, Some(&BATTERY), 7));
    let r = text_table(&d.path().join("r.jsonl"), &reference);
    let c = text_table(&d.path().join("c.jsonl"), &current);
    current.reverse();
    let c2 = text_table(&d.path().join("c2.jsonl"), &current);
    let a = drift(&r, &c, &Default::default()).unwrap();
    let b = drift(&r, &c2, &Default::default()).unwrap();
    let (a, b) = (a.get("review").unwrap(), b.get("review").unwrap());
    assert_eq!(
        serde_json::to_string(a).unwrap(),
        serde_json::to_string(b).unwrap()
    );
    assert!(a.drifted, "half the current is about batteries: {a:#?}");
    let with = |threshold: f64, per_column: bool, method: Option<Method>| {
        let mut opts = ferry_data::DriftOptions {
            method,
            ..Default::default()
        };
        if per_column {
            opts.thresholds.insert("review".into(), threshold);
        } else {
            opts.threshold = Some(threshold);
        }
        drift(&r, &c, &opts).unwrap().get("review").unwrap().clone()
    };
    let given = with(0.99, true, None);
    assert_eq!(given.threshold, 0.99);
    assert!(!given.drifted);
    assert_eq!(
        given.text.unwrap().classifier.unwrap().threshold_from,
        "given"
    );
    // `--threshold 0.01` (a p-value's) leaves the ROC AUC's bar alone...
    assert_eq!(with(0.01, false, None).threshold, a.threshold);
    // ...unless the method for every column is the domain classifier.
    let all = with(0.99, false, Some(Method::DomainClassifier));
    assert!(all.threshold == 0.99 && !all.drifted);
}

/// Two texts a side cannot be split into halves that both hold both
/// tables: an error naming the column, not a panic or a verdict.
#[test]
fn too_few_texts_and_numbers_are_refused_by_name() {
    use ferry_data::drift::Method;
    let d = tmp();
    let r = text_table(
        &d.path().join("r.jsonl"),
        &["good box".into(), "late parcel".into()],
    );
    let c = text_table(&d.path().join("c.jsonl"), &["battery dies".into()]);
    let e = drift(&r, &c, &Default::default()).unwrap_err().to_string();
    assert!(
        e.starts_with(
            "column `review`: too few texts for the domain classifier (2 reference, 1 current)"
        ),
        "{e}"
    );
    let (r, c) = drift_tables(d.path(), 100);
    let opts = ferry_data::DriftOptions {
        methods: [("same".to_string(), Method::DomainClassifier)].into(),
        ..Default::default()
    };
    let e = drift(&r, &c, &opts).unwrap_err().to_string();
    assert_eq!(
        e,
        "column `same`: the domain classifier needs text; the column is numerical"
    );
    assert_eq!(
        Method::parse("domain_classifier"),
        Some(Method::DomainClassifier)
    );
    // The method for every column leaves numbers to their own test.
    let opts = ferry_data::DriftOptions {
        method: Some(Method::DomainClassifier),
        ..Default::default()
    };
    assert_eq!(
        drift(&r, &c, &opts).unwrap().get("same").unwrap().method,
        Method::Ks
    );
}

/// The JSON of a text column's drift: the ROC AUC, its bar and where it
/// came from, the telling words and texts, the descriptors (numbers
/// rounded to 4 decimals, the chart left out).
#[test]
fn text_drift_json() {
    let mut reference = reviews(40, Some(&DELIVERY), 11);
    reference.push("   ".into());
    let current = reviews(40, Some(&BATTERY), 12);
    let c = text_drift(&reference, &current);
    let mut v = serde_json::to_value(&c).unwrap();
    v.as_object_mut().unwrap().remove("histogram");
    fn round(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Number(n) if n.is_f64() => {
                let x = n.as_f64().unwrap();
                *v = serde_json::json!((x * 1e4).round() / 1e4);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(round),
            serde_json::Value::Object(o) => o.values_mut().for_each(round),
            _ => {}
        }
    }
    round(&mut v);
    let k = &mut v["text"]["classifier"];
    for side in ["typical_examples_current", "typical_examples_reference"] {
        k[side].as_array_mut().unwrap().truncate(2);
    }
    for side in ["typical_words_current", "typical_words_reference"] {
        k[side].as_array_mut().unwrap().truncate(6);
    }
    insta::assert_json_snapshot!("text_drift", v);
}

/// Text rules on a review column: what holds, what fails with which rows,
/// a text rule on a number column, and a profile of the column that
/// proposes rules its own batch passes.
#[test]
fn text_rules_hold_reviews_to_their_shape() {
    let d = tmp();
    let mut texts = reviews(200, None, 3);
    texts[5] = String::new();
    texts[6] = "   ".into();
    texts[7] = "x".repeat(600);
    texts[8] = "12345 !!!".into();
    for t in &mut texts[100..140] {
        *t = "same text".into();
    }
    let path = d.path().join("reviews.jsonl");
    let mut s = String::new();
    for (i, t) in texts.iter().enumerate() {
        writeln!(s, "{}", serde_json::json!({ "review": t, "n": i })).unwrap();
    }
    std::fs::write(&path, s).unwrap();
    let suite = Suite::parse(
        "reviews.yaml",
        r#"
columns:
  review:
    type: string
    length: {min: 1, max: 500}
    regex: '[a-z]'
    max_empty_share: 0.005
    distinct_share: {min: 0.9}
  n: {distinct_share: {min: 1}, max_empty_share: 0.1}
"#,
    )
    .unwrap();
    let r = check(&open(&path), &suite).unwrap();
    let get = |id: &str| r.get(id).unwrap_or_else(|| panic!("no result {id}"));
    let rows = |id: &str| get(id).sample.iter().map(|f| f.row).collect::<Vec<_>>();
    // "" is 0 characters, 600 x's too many; "   " is 3.
    assert_eq!(rows("review.length"), [5, 7]);
    assert_eq!(rows("review.regex"), [5, 6, 8]);
    let empty = get("review.max_empty_share");
    assert_eq!(
        (empty.success, empty.unexpected_count, empty.element_count),
        (false, Some(2), Some(200))
    );
    assert_eq!(rows("review.max_empty_share"), [5, 6]);
    assert_eq!(
        (empty.expected.as_str(), empty.observed_text()),
        ("empty (or whitespace-only) share at most 0.5%", "1%".into())
    );
    // 40 rows say the same thing: 161 distinct values of 200.
    let distinct = get("review.distinct_share");
    assert_eq!(
        (distinct.success, distinct.observed_text()),
        (false, "80.5%".into())
    );
    assert!(get("n.distinct_share").success);
    assert_eq!(
        get("n.max_empty_share").observed_text(),
        "the column is int, not string"
    );
    assert!(!get("n.max_empty_share").success);
    // Looser bounds hold.
    let suite = Suite::parse(
        "reviews.yaml",
        "columns:\n  review: {length: {min: 0, max: 600}, max_empty_share: 0.01, distinct_share: {min: 0.8, max: 0.81}, regex: {pattern: '[a-z]', mostly: 0.98}}\n",
    )
    .unwrap();
    let r = check(&open(&path), &suite).unwrap();
    assert!(r.passed, "{:#?}", r.results);
    // The profile proposes the column's length range, its empty share
    // (twice the observed + 0.005) and 80% of its distinct share.
    let p = profile(&open(&path)).unwrap();
    let review = p.columns.iter().find(|c| c.name == "review").unwrap();
    assert_eq!(review.empty, Some(2));
    let yaml = p.suite_yaml();
    assert!(
        yaml.contains(
            "review: {type: string, not_null: true, length: {min: 0, max: 600}, max_empty_share: 0.025, distinct_share: {min: 0.644}}"
        ),
        "{yaml}"
    );
    let suite = Suite::parse("profiled.yaml", &yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    let r = check(&open(&path), &suite).unwrap();
    assert!(r.passed, "{yaml}\n{:#?}", r.results);
}
