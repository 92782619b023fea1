//! Record framing: NDJSON (one record per non-blank line) and JSON arrays.

use std::io::{self, BufRead};

use serde_json::value::RawValue;

/// The records of an NDJSON text: its non-blank lines, without line endings.
pub fn ndjson_records(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    text.split(|b| *b == b'\n').map(trim_line).filter(|l| !l.is_empty())
}

/// The elements of a JSON array, as raw text; an error if `text` is not a JSON array.
pub fn json_array_records(text: &[u8]) -> Result<Vec<&[u8]>, serde_json::Error> {
    let elements: Vec<&RawValue> = serde_json::from_slice(text)?;
    Ok(elements.into_iter().map(|raw| raw.get().as_bytes()).collect())
}

fn trim_line(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) { &[] } else { line }
}

/// Reads an NDJSON stream in chunks of whole records.
pub struct NdjsonChunks<R> {
    reader: R,
    done: bool,
}

/// A chunk of records read by [`NdjsonChunks`].
#[derive(Default)]
pub struct Chunk {
    bytes: Vec<u8>,
    lines: Vec<(usize, usize)>,
}

impl Chunk {
    /// The records in the chunk (its non-blank lines).
    pub fn records(&self) -> impl Iterator<Item = &[u8]> {
        self.lines.iter().map(|&(s, e)| trim_line(&self.bytes[s..e])).filter(|l| !l.is_empty())
    }

    /// How many bytes of the stream the chunk holds (line ends included).
    pub fn bytes(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the chunk holds no lines at all.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}

impl<R: BufRead> NdjsonChunks<R> {
    /// Chunks of `reader`'s lines.
    pub fn new(reader: R) -> Self {
        NdjsonChunks { reader, done: false }
    }

    /// Reads up to `lines` lines into `chunk` (cleared first); empty at the end.
    pub fn next_into(&mut self, chunk: &mut Chunk, lines: usize) -> io::Result<()> {
        chunk.bytes.clear();
        chunk.lines.clear();
        while !self.done && chunk.lines.len() < lines {
            let start = chunk.bytes.len();
            if self.reader.read_until(b'\n', &mut chunk.bytes)? == 0 {
                self.done = true;
                break;
            }
            let end = chunk.bytes.len() - (chunk.bytes.last() == Some(&b'\n')) as usize;
            chunk.lines.push((start, end));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ndjson_skips_blank_lines_and_carriage_returns() {
        let text = b"{\"a\":1}\r\n\n  \n{\"b\":2}";
        let records: Vec<&[u8]> = ndjson_records(text).collect();
        assert_eq!(records, vec![&b"{\"a\":1}"[..], &b"{\"b\":2}"[..]]);
    }

    #[test]
    fn json_arrays_yield_raw_elements() {
        let records = json_array_records(br#"[{"a": 1}, 2, "x"]"#).unwrap();
        assert_eq!(records, vec![&br#"{"a": 1}"#[..], b"2", br#""x""#]);
        assert!(json_array_records(br#"{"a": 1}"#).is_err());
    }

    #[test]
    fn chunks_hold_whole_lines() {
        let text = "1\n2\r\n\n3";
        let mut chunks = NdjsonChunks::new(text.as_bytes());
        let mut chunk = Chunk::default();
        chunks.next_into(&mut chunk, 2).unwrap();
        assert_eq!(chunk.records().collect::<Vec<_>>(), vec![&b"1"[..], b"2"]);
        chunks.next_into(&mut chunk, 2).unwrap();
        assert_eq!(chunk.records().collect::<Vec<_>>(), vec![&b"3"[..]]);
        chunks.next_into(&mut chunk, 2).unwrap();
        assert!(chunk.is_empty());
    }
}
