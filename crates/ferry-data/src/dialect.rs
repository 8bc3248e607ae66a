//! How a CSV file is written (`CsvOptions`: delimiter, header, quote,
//! escape), shared by reading a table (`source`) and by putting a row on
//! its file's own line afterwards (`locate`).

/// How to read a CSV file.
#[derive(Debug, Clone)]
pub struct CsvOptions {
    pub delimiter: u8,
    pub header: bool,
    pub quote: u8,
    pub escape: Option<u8>,
    /// Rows read to infer column types.
    pub infer_rows: usize,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            delimiter: b',',
            header: true,
            quote: b'"',
            escape: None,
            infer_rows: 10_000,
        }
    }
}
